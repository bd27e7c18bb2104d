"""UsrImage=squashfs: /usr as one image in the archive, with only the early files unpacked."""

import shutil
import subprocess
from pathlib import Path

import pytest

from mvirt_build import config, usr_image
from mvirt_build.cpio import Archive, Entry
from mvirt_build.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("mksquashfs") is None or shutil.which("unsquashfs") is None,
    reason="needs squashfs-tools (scripts/bootstrap.sh installs it)",
)


def sample() -> Archive:
    archive = Archive()
    archive.add(Entry("/etc/hostname", "file", 0o644, b"node\n"))
    archive.add(Entry("/init", "file", 0o755, b"#!/usr/bin/python3\n"))
    archive.add(Entry("/lib64", "symlink", 0o777, target="usr/lib64"))
    archive.add(Entry("/usr/bin/python3.11", "file", 0o755, b"\x7fELF interpreter"))
    archive.add(Entry("/usr/bin/python3", "symlink", 0o777, target="python3.11"))
    archive.add(Entry("/usr/lib/daemon/big.so", "file", 0o644, b"x" * 100_000))
    archive.add(Entry("/usr/sbin/tool", "file", 0o700, b"tool"))
    return archive


def unsquashfs(image: bytes, tmp: Path, *args: str) -> str:
    path = tmp / "image.squashfs"
    path.write_bytes(image)
    return subprocess.run(
        ["unsquashfs", *args, str(path)], capture_output=True, text=True, check=True
    ).stdout


def test_only_early_files_are_unpacked_and_the_image_holds_all_of_usr(tmp_path: Path) -> None:
    early = {"/usr/bin/python3.11", "/usr/bin/python3"}
    boot = usr_image.split(sample(), early, mtime=1_700_000_000)
    assert {"/etc/hostname", "/init", "/lib64", *early, usr_image.IMAGE_PATH} <= set(boot.entries)
    assert "/usr/lib/daemon/big.so" not in boot and "/usr/sbin/tool" not in boot
    image = boot.entries[usr_image.IMAGE_PATH].data
    listing = unsquashfs(image, tmp_path, "-lls", "-d", "")
    rows = {line.split()[-1] if "->" not in line else line.split()[-3]: line.split()[0]
            for line in listing.splitlines() if line.startswith(("-", "d", "l"))}  # fmt: skip
    assert rows["/bin/python3.11"] == "-rwxr-xr-x"
    assert rows["/sbin/tool"] == "-rwx------"
    assert rows["/lib/daemon/big.so"] == "-rw-r--r--"
    assert rows["/bin/python3"].startswith("l")
    assert "root/root" in listing
    big = subprocess.run(
        ["unsquashfs", "-cat", str(tmp_path / "image.squashfs"), "lib/daemon/big.so"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert big == b"x" * 100_000


def test_the_image_is_the_same_bytes_from_the_same_entries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A build sets SOURCE_DATE_EPOCH in the environment, and mksquashfs reads it too.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")
    monkeypatch.setenv("TZ", "UTC")  # unsquashfs lists local times
    first = usr_image.split(sample(), set(), mtime=1_700_000_000)
    image = first.entries[usr_image.IMAGE_PATH].data
    assert "2023-11-14 22:13" in unsquashfs(image, tmp_path, "-lls")  # every file at `mtime`
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    second = usr_image.split(sample(), set(), mtime=1_700_000_000)
    assert first.write(0) == second.write(0)
    other = usr_image.split(sample(), set(), mtime=1_700_000_001)
    assert other.entries[usr_image.IMAGE_PATH].data != first.entries[usr_image.IMAGE_PATH].data


def test_a_device_node_under_usr_is_refused() -> None:
    archive = sample()
    archive.add(Entry("/usr/dev-null", "chardev", 0o666, rdev=(1, 3)))
    with pytest.raises(BuildError, match="/usr/dev-null: a chardev cannot go into the /usr"):
        usr_image.split(archive, set(), mtime=0)


def test_usr_image_setting_is_checked(tmp_path: Path) -> None:
    (tmp_path / "kernel.version").write_text("6.1\n")
    conf = (
        "[Kernel]\nSource=/nonexistent.tar.xz\nVersion=kernel.version\nFragment=frag\n"
        "[Initramfs]\nInit=m:f\nUsrImage={}\n[Uki]\nStub=/stub\n"
    )
    (tmp_path / "mvirt-build.conf").write_text(conf.format("erofs"))
    with pytest.raises(BuildError, match=r"\[Initramfs\] UsrImage= is 'erofs'; use squashfs or no"):
        config.load(tmp_path, cache_dir=tmp_path / "cache")
    (tmp_path / "mvirt-build.conf").write_text(conf.format("no"))
    assert config.load(tmp_path, cache_dir=tmp_path / "cache").initramfs.usr_image == ""
    assert config.load(ROOT).initramfs.usr_image == "squashfs"
