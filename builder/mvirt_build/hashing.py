"""Content digests of files and trees, remembered by (size, mtime, inode) so a no-op build
only stats files instead of reading them again."""

import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
# A file modified this recently may be written again within the same mtime tick without its
# size changing; its digest is not remembered (git's "racily clean" rule).
RACY_NS = 2_000_000_000
SKIP_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


def sha256_and_size(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file's content, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's content."""
    return sha256_and_size(path)[0]


def sha256_text(text: str) -> str:
    """SHA-256 of a string (UTF-8)."""
    return hashlib.sha256(text.encode()).hexdigest()


class DigestCache:
    """A persistent map from a file's identity (path, size, mtime_ns, inode) to its SHA-256."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, list[int | str]] = {}
        self._dirty = False
        try:
            self._entries = json.loads(path.read_text())
        except (OSError, ValueError):
            self._entries = {}

    def file(self, path: Path) -> str:
        """The SHA-256 of `path`, read only when the file changed since it was last hashed."""
        st = path.stat()
        key = os.fspath(path)
        ident: list[int | str] = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = self._entries.get(key)
        if entry is not None and entry[:3] == ident:
            return str(entry[3])
        digest = sha256_file(path)
        if time.time_ns() - st.st_mtime_ns > RACY_NS:
            self._entries[key] = [*ident, digest]
            self._dirty = True
        return digest

    def tree(self, root: Path) -> str:
        """tree_digest(root), reading only the files that changed."""
        return tree_digest(root, self.file)

    def save(self) -> None:
        """Write the cache back when something was added (atomically)."""
        if not self._dirty:
            return
        atomic_write(self.path, json.dumps(self._entries))
        self._dirty = False


TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` all at once (readers see the old or the new file, never a
    part). The temporary file next to it has an unguessable name and is created new
    (O_EXCL|O_NOFOLLOW: never through a planted file or symlink) with mode 0600, so a secret is
    never readable by others, not even for a moment; it gets `mode` once written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, TEMP_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def tree_digest(root: Path, file_digest: Callable[[Path], str] = sha256_file) -> str:
    """One digest over everything below `root`: relative paths, types, modes, link targets and
    file contents."""
    h = hashlib.sha256()
    for rel, kind, detail in walk_tree(root):
        content = f":{file_digest(root / rel)}" if kind == "f" else ""
        h.update(f"{rel}\0{kind}\0{detail}{content}\n".encode())
    return h.hexdigest()


def walk_tree(root: Path) -> list[tuple[str, str, str]]:
    """Sorted (relative path, kind f/l/d, mode or link target) of everything below `root`."""
    found: list[tuple[str, str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_NAMES)
        base = Path(dirpath)
        for name in [*dirnames, *sorted(filenames)]:
            full = base / name
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                found.append((rel, "l", os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                found.append((rel, "d", oct(st.st_mode & 0o7777)))
            elif stat.S_ISREG(st.st_mode) and not name.endswith(".pyc"):
                found.append((rel, "f", oct(st.st_mode & 0o7777)))
    found.sort()
    return found
