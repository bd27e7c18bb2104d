"""The initramfs archive: deterministic bytes, and content the kernel's unpacker understands."""

import subprocess

import libarchive

from mvirt_build.cpio import Archive, Entry


def sample(order: list[Entry]) -> Archive:
    archive = Archive()
    for entry in order:
        archive.add(entry)
    return archive


ENTRIES = [
    Entry("/usr/bin/tool", "file", 0o755, b"#!/bin/sh\n"),
    Entry("/lib", "symlink", 0o777, target="usr/lib"),
    Entry("/dev/console", "chardev", 0o600, rdev=(5, 1)),
    Entry("/etc/hostname", "file", 0o644, b"mvirt\n"),
    Entry("/tmp", "dir", 0o1777),
]


def test_same_entries_give_same_bytes_whatever_the_order():
    a = sample(ENTRIES).write(mtime=1700000000)
    b = sample(list(reversed(ENTRIES))).write(mtime=1700000000)
    assert a == b


def test_mtime_is_the_only_time_recorded():
    assert sample(ENTRIES).write(1) != sample(ENTRIES).write(2)


def test_entries_read_back_with_types_modes_targets_and_devices():
    raw = sample(ENTRIES).write(mtime=42)
    seen = {}
    with libarchive.memory_reader(raw) as reader:
        for e in reader:
            data = b"".join(e.get_blocks())
            seen[e.pathname] = (e.filetype, e.perm, e.linkpath, e.rdevmajor, e.rdevminor, data,
                                e.uid, e.gid, e.mtime)  # fmt: skip
    assert seen["usr/bin/tool"][5] == b"#!/bin/sh\n"
    assert seen["usr/bin/tool"][1] == 0o755
    assert seen["lib"][2] == "usr/lib"
    assert seen["dev/console"][3:5] == (5, 1)
    assert seen["tmp"][1] == 0o1777
    # parents were added as folders, every entry root-owned with the fixed mtime
    assert "usr" in seen and "usr/bin" in seen
    assert {v[6:] for v in seen.values()} == {(0, 0, 42)}


def test_gnu_cpio_lists_the_archive_in_path_order():
    listing = subprocess.run(
        ["cpio", "-t", "--quiet"], input=sample(ENTRIES).write(0), capture_output=True, check=True
    ).stdout.decode()
    names = listing.split()
    assert names == sorted(names)
    assert "etc/hostname" in names
