"""Deterministic cpio "newc" archives (the initramfs format, the kernel's
Documentation/driver-api/early-userspace/buffer-format.rst).

Entries are sorted by path, owned by root, numbered in that order and stamped with one fixed
mtime, so the same entries always give the same bytes. Parent folders are added automatically.
The format is a fixed ASCII header per entry, so it is written here directly.
"""

import stat
from dataclasses import dataclass
from pathlib import PurePosixPath


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
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "chardev": stat.S_IFCHR,
}
MAGIC = b"070701"
TRAILER = "TRAILER!!!"


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
        for number, e in enumerate(self.sorted_entries(), 1):
            body = e.target.encode() if e.kind == "symlink" else e.data
            links = 2 if e.kind == "dir" else 1
            chunks.append(_member(e.path.lstrip("/"), number, _TYPES[e.kind] | stat.S_IMODE(e.mode),
                                  links, mtime, e.rdev, body))  # fmt: skip
        chunks.append(_member(TRAILER, 0, 0, 1, 0, (0, 0), b""))
        raw = b"".join(chunks)
        return raw + bytes(-len(raw) % 512)  # whole blocks, as cpio(1) writes them


def _pad4(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _member(
    name: str, ino: int, mode: int, nlink: int, mtime: int, rdev: tuple[int, int], body: bytes
) -> bytes:
    """One newc header (13 fields of 8 hex digits), the NUL-terminated name and the body, each
    padded to 4 bytes; owner root, device 0, no checksum."""
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, mtime, len(body), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = MAGIC + b"".join(b"%08X" % value for value in fields)
    return _pad4(header + encoded) + _pad4(body)
