"""Explaining differences between two builds down to the PE section and initramfs file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import libarchive
import zstandard
from libarchive.entry import FileType

from mvirt_build.compare import diff_cpio, diff_files, read_newc

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")


def newc(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A zstd-compressed newc archive of {path: (data, mtime)}."""
    chunks: list[bytes] = []

    def collect(block: bytes) -> int:
        chunks.append(bytes(block))
        return len(block)

    with libarchive.custom_writer(collect, "cpio_newc") as archive:
        for path, (data, mtime) in files.items():
            archive.add_file_from_memory(
                path, len(data), data, filetype=FileType.AE_IFREG, permission=0o644, mtime=mtime
            )
    return zstandard.ZstdCompressor(level=3).compress(b"".join(chunks))


def uki_with(tmp_path: Path, name: str, initrd: bytes) -> Path:
    blob = tmp_path / f"{name}.initrd"
    blob.write_bytes(initrd)
    out = tmp_path / name / "mvirt-uos.efi"
    out.parent.mkdir()
    subprocess.run(
        ["objcopy", "--add-section", f".initrd={blob}", "--change-section-vma",
         ".initrd=0x14dfb0000", str(STUB), str(out)],
        check=True,
    )  # fmt: skip
    return out


BASE = {"etc/hostname": (b"mvirt\n", 10), "init": (b"#!/bin/sh\n", 10)}


def test_identical_builds_have_no_differences(tmp_path):
    a = uki_with(tmp_path, "a", newc(BASE))
    b = uki_with(tmp_path, "b", newc(BASE))
    assert diff_files(a, b) == []


def test_a_changed_file_is_named_inside_the_initrd_section(tmp_path):
    changed = BASE | {"etc/hostname": (b"other\n", 10), "init": (b"#!/bin/sh\n", 99)}
    a = uki_with(tmp_path, "a", newc(BASE))
    b = uki_with(tmp_path, "b", newc(changed))
    report = diff_files(a, b)
    assert "mvirt-uos.efi: section .initrd differs" in report
    assert "mvirt-uos.efi .initrd: etc/hostname differs in content" in report
    assert "mvirt-uos.efi .initrd: init differs in mtime" in report
    assert not any(".text" in line for line in report)


def test_added_file_and_compression_only_differences(tmp_path):
    plain = newc(BASE)
    more = newc(BASE | {"extra": (b"x", 10)})
    assert diff_cpio(plain, more) == ["initramfs: extra only in the second"]
    members = read_newc(zstandard.ZstdDecompressor().decompress(plain))
    level19 = zstandard.ZstdCompressor(level=19).compress(
        zstandard.ZstdDecompressor().decompress(plain)
    )
    assert [m.name for m in members] == ["etc/hostname", "init"]
    assert "compression is not deterministic" in diff_cpio(plain, level19)[0]


def test_plain_files_report_the_first_differing_byte(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"abcdef")
    b.write_bytes(b"abcXef")
    assert diff_files(a, b) == ["a.bin: 6 vs 6 bytes, first at byte 0x3"]
