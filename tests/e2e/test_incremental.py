"""Rebuild only what changed, on a copy of the checkout with its own output folder (the caches
are shared, so the kernel and rootfs of the real build are reused, as in a fresh clone)."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import libarchive
import pytest

from mvirt_build import config
from mvirt_build.compare import decompress
from mvirt_build.config import initramfs_image

from .conftest import BUILD, ROOT

pytestmark = pytest.mark.slow


def run(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUILD), "--output-dir", str(checkout / "out"), *args],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def status(checkout: Path) -> dict[str, dict[str, Any]]:
    proc = run(checkout, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["stage"]: row for row in json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, built_uki) -> Path:
    dest = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    first = run(dest, "uki")
    assert first.returncode == 0, first.stderr
    return dest


def test_second_build_does_nothing(checkout):
    proc = run(checkout, "uki")
    assert proc.returncode == 0, proc.stderr
    assert "everything is up to date" in proc.stderr
    assert "building" not in proc.stderr


def test_kernel_fragment_comment_changes_nothing(checkout):
    fragment = checkout / "kernel/kernel.config"
    original = fragment.read_text()
    try:
        fragment.write_text(original + "# a comment explaining an option\n")
        assert not any(row["stale"] for row in status(checkout).values())
    finally:
        fragment.write_text(original)


def test_kernel_fragment_edit_makes_kernel_and_uki_stale_only(checkout):
    fragment = checkout / "kernel/kernel.config"
    original = fragment.read_text()
    try:
        fragment.write_text(original + "CONFIG_MVIRT_TEST_OPTION=y\n")
        rows = status(checkout)
        assert (
            rows["kernel"]["stale"] and "kernel/kernel.config changed" in rows["kernel"]["reasons"]
        )
        assert not rows["rootfs"]["stale"]
        assert not rows["initramfs"]["stale"]
        assert rows["uki"]["stale"]
    finally:
        fragment.write_text(original)
    assert not any(row["stale"] for row in status(checkout).values())


def test_mkosi_extra_edit_rebuilds_rootfs_initramfs_uki_not_kernel(checkout):
    hostname = checkout / "mkosi.extra/etc/hostname"
    hostname.write_text("edited-host\n")
    rows = status(checkout)
    assert not rows["kernel"]["stale"]
    assert rows["rootfs"]["stale"]
    proc = run(checkout, "uki")
    assert proc.returncode == 0, proc.stderr
    assert "kernel     up to date" in proc.stderr
    assert "built rootfs, initramfs, uki" in proc.stderr
    image = initramfs_image(config.load(checkout, output_dir=checkout / "out"))
    raw = decompress(image.read_bytes())
    with libarchive.memory_reader(raw) as archive:
        found = {e.pathname: b"".join(e.get_blocks()) for e in archive if e.isfile}
    assert found["etc/hostname"] == b"edited-host\n"


def test_plain_mkosi_build_yields_the_same_uki(checkout, build_config):
    # `make uos` in the copy (default build/ folder), then a plain `mkosi build`, whose
    # post-output script hands its tree to the builder. The copy has no virtualenv of its own:
    # mount the checkout's where mkosi's sandbox expects it.
    by_builder = subprocess.run(
        [str(BUILD), "uki"], cwd=checkout, capture_output=True, text=True, check=False
    )
    assert by_builder.returncode == 0, by_builder.stderr
    before = hashlib.sha256((checkout / "build/mvirt-uos.efi").read_bytes()).hexdigest()
    (checkout / "build/mvirt-uos.efi").unlink()
    # mkosi's sandbox has no network: the locked wheels come from the checkout (`make wheels`)
    # and the pinned downloads from the cache mounted where mkosi.postoutput looks for it.
    downloads = build_config.cache_dir / "downloads"
    wheels = subprocess.run(
        [sys.executable, "-m", "mvirt_build.pylock"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert wheels.returncode == 0, wheels.stderr
    proc = subprocess.run(
        ["mkosi", "--force", "--package-cache-dir", str(build_config.cache_dir / "mkosi-packages"),
         "--build-sources",
         f"{checkout}:/,{ROOT / '.venv'}:/.venv,{downloads}:/.cache/mvirt/downloads", "build"],
        cwd=checkout, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = hashlib.sha256((checkout / "build/mvirt-uos.efi").read_bytes()).hexdigest()
    assert after == before
    # The tree mkosi made is recorded: the next `make uos` does not run mkosi again.
    rows = subprocess.run(
        [str(BUILD), "status", "--json"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout
    rootfs = {row["stage"]: row for row in json.loads(rows)}["rootfs"]
    assert not rootfs["stale"], rootfs["reasons"]
