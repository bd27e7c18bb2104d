"""Deterministic cpio "newc" archives (the initramfs format) written with libarchive.

Entries are sorted by path, owned by root, and stamped with one fixed mtime, so the same
entries always give the same bytes. Parent folders are added automatically.
"""

import stat
from ctypes import c_char_p
from dataclasses import dataclass
from pathlib import PurePosixPath

import libarchive
from libarchive import ffi
from libarchive.entry import ArchiveEntry, FileType
from libarchive.write import ArchiveWrite


@dataclass(frozen=True)
class Entry:
    """One member of the archive: a file (data), a folder, a symlink or a character device."""

    path: str  # absolute image path, e.g. /usr/bin/python3.11
    kind: str  # "file" | "dir" | "symlink" | "chardev"
    mode: int = 0o644
    data: bytes = b""
    target: str = ""  # symlink target
    rdev: tuple[int, int] = (0, 0)

    @property
    def size(self) -> int:
        """Bytes the entry stores."""
        return len(self.data)


_TYPES = {
    "file": FileType.AE_IFREG,
    "dir": FileType.AE_IFDIR,
    "symlink": FileType.AE_IFLNK,
    "chardev": FileType.AE_IFCHR,
}


class Archive:
    """A set of entries keyed by path; later additions of the same path replace earlier ones."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        """Add an entry and, as folders, every parent it needs."""
        path = str(PurePosixPath("/") / entry.path)
        for parent in reversed(PurePosixPath(path).parents):
            key = str(parent)
            if key != "/" and key not in self.entries:
                self.entries[key] = Entry(key, "dir", 0o755)
        self.entries[path] = Entry(
            path, entry.kind, entry.mode, entry.data, entry.target, entry.rdev
        )

    def __contains__(self, path: str) -> bool:
        return path in self.entries

    def sorted_entries(self) -> list[Entry]:
        """Entries in byte order of their paths (parents always sort before children)."""
        return [self.entries[k] for k in sorted(self.entries, key=lambda p: p.encode())]

    def write(self, mtime: int) -> bytes:
        """The uncompressed newc archive."""
        chunks: list[bytes] = []

        def collect(block: bytes) -> int:
            chunks.append(bytes(block))
            return len(block)

        with libarchive.custom_writer(collect, "cpio_newc") as archive:
            for e in self.sorted_entries():
                _write_entry(archive, e, mtime)
        return b"".join(chunks)


def _write_entry(archive: ArchiveWrite, e: Entry, mtime: int) -> None:
    """Write one entry. Built by hand rather than with add_file_from_memory because
    libarchive-c's `linkpath` records a hard link on a new entry: symlinks need
    archive_entry_set_symlink."""
    entry = ArchiveEntry(
        pathname=e.path.lstrip("/"),
        size=e.size,
        filetype=_TYPES[e.kind],
        perm=stat.S_IMODE(e.mode),
        uid=0,
        gid=0,
        mtime=mtime,
    )
    if e.kind == "symlink":
        _set_symlink(entry._entry_p, e.target.encode())
    if e.kind == "chardev":
        entry.rdev = e.rdev
    ffi.write_header(archive._pointer, entry._entry_p)
    if e.data:
        ffi.write_data(archive._pointer, e.data, len(e.data))
    ffi.write_finish_entry(archive._pointer)


_set_symlink = ffi.libarchive.archive_entry_set_symlink
_set_symlink.argtypes = [ffi.c_archive_entry_p, c_char_p]
_set_symlink.restype = None
