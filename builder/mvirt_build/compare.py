"""Explains why two builds of an artifact differ: which PE section, which initramfs file.

Used by the reproducibility check: when two builds of the same inputs do not give the same
bytes, "the UKI differs" is useless; "`.initrd`: /usr/lib/python3.11/foo.pyc differs in
content (mtime equal)" says where to look.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import lz4.block
import pefile
import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NEWC_MAGIC = b"070701"
_NEWC_FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor",
                "devminor", "rdevmajor", "rdevminor", "namesize", "check")  # fmt: skip


@dataclass(frozen=True)
class CpioMember:
    """One member of a newc archive, with a hash of its data."""

    name: str
    mode: int
    uid: int
    gid: int
    mtime: int
    rdev: tuple[int, int]
    sha256: str


def read_newc(data: bytes) -> list[CpioMember]:
    """Parse an uncompressed newc archive (or several concatenated) into its members."""
    members = []
    pos = 0
    while pos + 110 <= len(data):
        if data[pos : pos + 6] != NEWC_MAGIC:
            if data[pos:].strip(b"\0"):
                raise ValueError(f"not a newc header at offset {pos}")
            break  # padding after the trailer
        raw = data[pos + 6 : pos + 110]
        fields = {n: int(raw[i * 8 : i * 8 + 8], 16) for i, n in enumerate(_NEWC_FIELDS)}
        name_start = pos + 110
        name = data[name_start : name_start + fields["namesize"] - 1].decode(errors="replace")
        data_start = (name_start + fields["namesize"] + 3) & ~3
        body = data[data_start : data_start + fields["filesize"]]
        pos = (data_start + fields["filesize"] + 3) & ~3
        if name == "TRAILER!!!":
            continue
        members.append(
            CpioMember(
                name=name,
                mode=fields["mode"],
                uid=fields["uid"],
                gid=fields["gid"],
                mtime=fields["mtime"],
                rdev=(fields["rdevmajor"], fields["rdevminor"]),
                sha256=hashlib.sha256(body).hexdigest(),
            )
        )
    return members


LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
LZ4_LEGACY_CHUNK = 8 << 20  # blocks of at most 8 MiB, as the kernel's unlz4 reads them


def decompress(data: bytes) -> bytes:
    """`data` unpacked when it is zstd (all frames) or legacy lz4, else unchanged."""
    if data.startswith(LZ4_LEGACY_MAGIC):
        out = bytearray()
        offset = len(LZ4_LEGACY_MAGIC)
        while offset + 4 <= len(data):
            size = int.from_bytes(data[offset : offset + 4], "little")
            block = data[offset + 4 : offset + 4 + size]
            out += lz4.block.decompress(block, uncompressed_size=LZ4_LEGACY_CHUNK)
            offset += 4 + size
        return bytes(out)
    if not data.startswith(ZSTD_MAGIC):
        return data
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    with reader:
        return reader.read()


def diff_cpio(a: bytes, b: bytes, label: str = "initramfs") -> list[str]:
    """What differs between two (optionally zstd-compressed) newc archives, per member."""
    if a == b:
        return []
    ua, ub = decompress(a), decompress(b)
    if ua == ub:
        return [
            f"{label}: same files, different compressed bytes (compression is not deterministic)"
        ]
    ma, mb = read_newc(ua), read_newc(ub)
    out = []
    by_a = {m.name: m for m in ma}
    by_b = {m.name: m for m in mb}
    for name in sorted(by_a.keys() - by_b.keys()):
        out.append(f"{label}: {name} only in the first")
    for name in sorted(by_b.keys() - by_a.keys()):
        out.append(f"{label}: {name} only in the second")
    for name in sorted(by_a.keys() & by_b.keys()):
        x, y = by_a[name], by_b[name]
        fields = [f for f in ("sha256", "mode", "uid", "gid", "mtime", "rdev")
                  if getattr(x, f) != getattr(y, f)]  # fmt: skip
        if fields:
            what = ", ".join("content" if f == "sha256" else f for f in fields)
            out.append(f"{label}: {name} differs in {what}")
    if not out and [m.name for m in ma] != [m.name for m in mb]:
        out.append(f"{label}: same members in a different order")
    if not out:
        out.append(f"{label}: same members, different archive headers (inode numbers?)")
    return out


def _sections(pe: pefile.PE) -> dict[str, bytes]:
    """Section contents without the file-alignment padding (VirtualSize is the real length)."""
    out = {}
    for s in pe.sections:
        data = s.get_data()
        if 0 < s.Misc_VirtualSize < len(data):
            data = data[: s.Misc_VirtualSize]
        out[s.Name.rstrip(b"\0").decode(errors="replace")] = data
    return out


def diff_pe(a: bytes, b: bytes, label: str = "UKI") -> list[str]:
    """What differs between two PE images: headers, and each section by name; an `.initrd`
    section that differs is compared file by file."""
    if a == b:
        return []
    pa, pb = pefile.PE(data=a, fast_load=True), pefile.PE(data=b, fast_load=True)
    try:
        out = []
        ha = a[: pa.OPTIONAL_HEADER.SizeOfHeaders]
        hb = b[: pb.OPTIONAL_HEADER.SizeOfHeaders]
        if ha != hb:
            first = next(
                (i for i, (x, y) in enumerate(zip(ha, hb, strict=False)) if x != y),
                min(len(ha), len(hb)),
            )
            out.append(f"{label}: PE headers differ (first at byte {first:#x})")
        sa, sb = _sections(pa), _sections(pb)
        for name in sorted(sa.keys() | sb.keys()):
            if name not in sa or name not in sb:
                out.append(
                    f"{label}: section {name} only in {'the second' if name in sb else 'the first'}"
                )
            elif sa[name] != sb[name]:
                out.append(f"{label}: section {name} differs")
                if name == ".initrd":
                    out.extend(diff_cpio(sa[name], sb[name], f"{label} .initrd"))
        if not out:
            out.append(f"{label}: same headers and sections; bytes after the sections differ")
        return out
    finally:
        pa.close()
        pb.close()


def diff_files(a: Path, b: Path) -> list[str]:
    """Explain the difference between two builds of one artifact (empty: identical)."""
    da, db = a.read_bytes(), b.read_bytes()
    if da == db:
        return []
    if da[:2] == b"MZ" and db[:2] == b"MZ":
        return diff_pe(da, db, a.name)
    if da.startswith((ZSTD_MAGIC, NEWC_MAGIC)):
        return diff_cpio(da, db, a.name)
    first = next((i for i, (x, y) in enumerate(zip(da, db, strict=False)) if x != y), None)
    where = f"first at byte {first:#x}" if first is not None else "one is a prefix of the other"
    return [f"{a.name}: {len(da)} vs {len(db)} bytes, {where}"]
