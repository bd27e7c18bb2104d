"""downloads.lock: parsing, validation, explicit unknowns, pinning."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.lockfile import dump_lock, load_lock, pin_entry, write_lock

REPO_LOCK = Path(__file__).resolve().parents[2] / "downloads.lock"

ENTRY = """
[[download]]
name = "{name}"
url = "{url}"
sha256 = "{sha}"
size = {size}
install = "/usr/bin/x"
mode = "0755"
check = "{check}"
note = ""
"""


def write(tmp_path: Path, **kw) -> Path:
    values = {"name": "x", "url": "https://example.invalid/x", "sha": "a" * 64, "size": "10",
              "check": "none"} | kw  # fmt: skip
    path = tmp_path / "downloads.lock"
    path.write_text(ENTRY.format(**values))
    return path


def test_repository_lock_is_valid_and_canonical():
    lock = load_lock(REPO_LOCK)
    names = {e.name for e in lock.entries}
    assert {"linux", "cloud-hypervisor", "hypervisor-fw"} <= names
    assert lock.get("cloud-hypervisor").install == "/usr/bin/cloud-hypervisor"
    assert lock.get("cloud-hypervisor").check == "elf-static"
    assert dump_lock(lock) == REPO_LOCK.read_text()


def test_unknown_hash_and_size_are_explicit(tmp_path):
    entry = load_lock(write(tmp_path, sha="unknown", size='"unknown"')).get("x")
    assert entry.sha256 is None and entry.size is None
    assert not entry.pinned


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sha", "abc", "64 hex digits"),
        ("size", "-1", "positive number"),
        ("url", "ftp://x/y", "http"),
        ("check", "maybe", "check must be one of"),
        ("name", "Bad Name", "lower-case"),
    ],
)
def test_bad_entries_are_refused_with_the_entry_named(tmp_path, field, value, message):
    with pytest.raises(BuildError, match=message):
        load_lock(write(tmp_path, **{field: value}))


def test_duplicates_and_broken_toml_are_refused(tmp_path):
    path = tmp_path / "downloads.lock"
    path.write_text(
        ENTRY.format(name="x", url="https://a/b", sha="a" * 64, size=1, check="none") * 2
    )
    with pytest.raises(BuildError, match="duplicate"):
        load_lock(path)
    path.write_text("[[download]\n")
    with pytest.raises(BuildError, match="not valid TOML"):
        load_lock(path)


def test_pinning_writes_hash_and_size_and_keeps_the_rest(tmp_path):
    path = write(tmp_path, sha="unknown", size='"unknown"')
    lock = load_lock(path)
    write_lock(pin_entry(lock, "x", "b" * 64, 1234))
    again = load_lock(path).get("x")
    assert (again.sha256, again.size, again.url) == ("b" * 64, 1234, lock.get("x").url)
    assert not list(tmp_path.glob(".downloads.lock.tmp-*"))
    with pytest.raises(BuildError, match="no download called 'y'"):
        pin_entry(lock, "y", "b" * 64, 1)


def test_image_pins_of_the_repository_lock():
    lock = load_lock(REPO_LOCK)
    ch = lock.get("cloud-hypervisor")
    assert "/v53.0/cloud-hypervisor-static" in ch.url
    assert ch.sha256 == "448af3d4e59b22c2987f7df94c213ad40fb53a10d437e42b5ee6c4fce7c29ecc"
    fw = lock.get("cloudhv-fd")
    assert fw.from_apt and fw.url.startswith("apt:sid/cloudhv-efi-x86-64=")
    assert fw.pinned and fw.size is not None
    assert (fw.install, fw.member) == (
        "/usr/share/mvirt/CLOUDHV.fd",
        "usr/share/cloudhv-efi-x86-64/CLOUDHV.fd",
    )


def test_apt_entry_needs_a_member_and_a_versioned_package(tmp_path):
    with pytest.raises(BuildError, match="needs member"):
        load_lock(write(tmp_path, url="apt:sid/cloudhv-efi-x86-64=1.0"))
    with pytest.raises(BuildError, match="apt:SUITE/PACKAGE=VERSION"):
        load_lock(write(tmp_path, url="apt:sid/cloudhv-efi-x86-64"))
