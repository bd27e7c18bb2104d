"""--extra-tree: a folder laid over the initramfs replaces and adds files."""

import os

from mvirt_build.cpio import Archive, Entry
from mvirt_build.stages.initramfs import add_tree


def test_extra_tree_replaces_files_and_keeps_modes_and_links(tmp_path):
    archive = Archive()
    archive.add(Entry("/etc/pideisn/services.toml", "file", 0o644, b"[services.node]\n"))
    overlay = tmp_path / "overlay"
    (overlay / "etc/pideisn").mkdir(parents=True)
    (overlay / "etc/pideisn/services.toml").write_text("[services.hello]\n")
    (overlay / "usr/bin").mkdir(parents=True)
    (overlay / "usr/bin/tool").write_bytes(b"#!/bin/sh\n")
    (overlay / "usr/bin/tool").chmod(0o755)
    os.symlink("tool", overlay / "usr/bin/alias")
    add_tree(archive, overlay)
    entries = {e.path: e for e in archive.sorted_entries()}
    assert entries["/etc/pideisn/services.toml"].data == b"[services.hello]\n"
    assert entries["/usr/bin/tool"].mode == 0o755
    assert (entries["/usr/bin/alias"].kind, entries["/usr/bin/alias"].target) == ("symlink", "tool")
