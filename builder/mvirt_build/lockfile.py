"""The downloads lock (`downloads.lock`, TOML): what the build fetches, from where, pinned how.

Each `[[download]]` table names one input with its URL, SHA-256, size in bytes, where it goes in
the image (`install`, empty for build inputs such as the kernel tarball), which check its
content must pass (`check`) and a free-form `note`. A value nobody has verified yet is written
as the string "unknown": such an entry is never downloaded blindly; `mvirt-build lock NAME
--file PATH` pins it from a local copy.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from mvirt_build.debfetch import parse_url
from mvirt_build.errors import BuildError
from mvirt_build.hashing import atomic_write

UNKNOWN = "unknown"
CHECKS = ("none", "elf", "elf-static")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

HEADER = """\
# Pinned downloads of the mvirt build: one [[download]] table per fetched input.
# sha256/size = "unknown" means nobody has verified the published file yet: the build refuses
# to download it until it is pinned from a local copy with
#   mvirt-build lock NAME --file PATH
# install = where the file goes in the image ("" for build inputs such as the kernel tarball);
# check = what its content must be: "elf-static" (x86-64, no interpreter, no DT_NEEDED),
# "elf" (x86-64 ELF) or "none".
# url = "apt:SUITE/PACKAGE=VERSION" takes a Debian package through a private apt configuration
# (signature-checked by apt, then by the pinned sha256 of the .deb); member = the file in it.
"""


@dataclass(frozen=True)
class LockEntry:
    """One pinned download. `sha256`/`size` are None while unknown."""

    name: str
    url: str
    sha256: str | None
    size: int | None
    install: str
    check: str
    mode: int
    note: str
    member: str = ""  # for apt: entries, the file of the package that is installed

    @property
    def from_apt(self) -> bool:
        """True for a Debian package fetched with apt (url `apt:SUITE/PACKAGE=VERSION`)."""
        return self.url.startswith("apt:")

    @property
    def pinned(self) -> bool:
        """True when the entry's SHA-256 is known, so a download can be verified."""
        return self.sha256 is not None


@dataclass(frozen=True)
class DownloadsLock:
    """The parsed lock file: entries in file order."""

    path: Path
    entries: tuple[LockEntry, ...]

    def get(self, name: str) -> LockEntry:
        """The entry called `name`, or a BuildError listing the names there are."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        names = ", ".join(e.name for e in self.entries)
        raise BuildError(f"{self.path}: no download called {name!r} (there are: {names})")


# Where downloads may go in the image: programs and their data, nothing that configures the
# system or boots it.
INSTALL_ROOTS = ("/usr/bin/", "/usr/lib/", "/usr/libexec/", "/usr/share/", "/opt/")
_INSTALL_PART = re.compile(r"^[A-Za-z0-9._+-]+$")


def check_install_path(install: str, where: str) -> None:
    """Refuse an `install` path that could leave the image or land outside the allowed roots:
    it must be absolute, normal (no `..`, `.`, empty parts or odd characters) and below one of
    INSTALL_ROOTS."""
    parts = install.split("/")[1:]
    if (
        not install.startswith("/")
        or not parts
        or any(p in ("", ".", "..") or not _INSTALL_PART.match(p) for p in parts)
    ):
        raise BuildError(
            f"{where}: install {install!r} must be a plain absolute path in the image "
            "(no '..', '.', empty parts or special characters)"
        )
    if not install.startswith(INSTALL_ROOTS):
        raise BuildError(
            f"{where}: install {install!r} is outside the places downloads may go: "
            + ", ".join(INSTALL_ROOTS)
        )


def _parse_entry(path: Path, index: int, table: dict[str, object]) -> LockEntry:
    where = f"{path}: download #{index + 1}"

    def text(key: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise BuildError(f"{where}: {key!r} must be a string")
        return value

    name = text("name")
    where = f"{path}: download {name!r}"
    if not _NAME.match(name):
        raise BuildError(f"{where}: name must be lower-case letters, digits, '.', '_' or '-'")
    url = text("url")
    if not url.startswith(("https://", "http://", "apt:")):
        raise BuildError(f"{where}: url must be http(s) or apt:SUITE/PACKAGE=VERSION, got {url!r}")
    member = text("member", "")
    if url.startswith("apt:"):
        parse_url(url)
        if not member or member.startswith("/"):
            raise BuildError(f"{where}: an apt: entry needs member = the file's path in the .deb")
    sha_raw = text("sha256").lower()
    if sha_raw != UNKNOWN and not _SHA256.match(sha_raw):
        raise BuildError(f"{where}: sha256 must be 64 hex digits or {UNKNOWN!r}")
    size_raw = table.get("size")
    size: int | None
    if size_raw == UNKNOWN:
        size = None
    elif isinstance(size_raw, int) and not isinstance(size_raw, bool) and size_raw > 0:
        size = size_raw
    else:
        raise BuildError(f"{where}: size must be a positive number of bytes or {UNKNOWN!r}")
    check = text("check", "none")
    if check not in CHECKS:
        raise BuildError(f"{where}: check must be one of {', '.join(CHECKS)}")
    install = text("install", "")
    if install:
        check_install_path(install, where)
    mode_raw = text("mode", "0644")
    try:
        mode = int(mode_raw, 8)
    except ValueError:
        raise BuildError(f'{where}: mode must be octal, e.g. "0755"') from None
    return LockEntry(
        name=name,
        url=url,
        sha256=None if sha_raw == UNKNOWN else sha_raw,
        size=size,
        install=install,
        check=check,
        mode=mode,
        note=text("note", ""),
        member=member,
    )


def load_lock(path: Path) -> DownloadsLock:
    """Parse and validate `path`; errors name the file and the entry."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BuildError(f"{path}: downloads lock not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{path}: not valid TOML: {exc}") from None
    tables = data.get("download", [])
    if not isinstance(tables, list):
        raise BuildError(f"{path}: 'download' must be an array of tables ([[download]])")
    entries = tuple(_parse_entry(path, i, t) for i, t in enumerate(tables))
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(f"{path}: duplicate download names: {', '.join(dupes)}")
    return DownloadsLock(path=path, entries=entries)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def dump_lock(lock: DownloadsLock) -> str:
    """The lock as TOML text, in a fixed key order so diffs stay small."""
    out = [HEADER]
    for e in lock.entries:
        out.append("\n[[download]]\n")
        out.append(f"name = {_quote(e.name)}\n")
        out.append(f"url = {_quote(e.url)}\n")
        out.append(f"sha256 = {_quote(e.sha256 or UNKNOWN)}\n")
        out.append(f"size = {e.size if e.size is not None else _quote(UNKNOWN)}\n")
        out.append(f"install = {_quote(e.install)}\n")
        out.append(f"mode = {_quote(format(e.mode, '04o'))}\n")
        out.append(f"check = {_quote(e.check)}\n")
        if e.member:
            out.append(f"member = {_quote(e.member)}\n")
        out.append(f"note = {_quote(e.note)}\n")
    return "".join(out)


def write_lock(lock: DownloadsLock) -> None:
    """Write the lock atomically (temp file + rename), so a crash never leaves half a lock."""
    atomic_write(lock.path, dump_lock(lock))


def pin_entry(lock: DownloadsLock, name: str, sha256: str, size: int) -> DownloadsLock:
    """A copy of `lock` where entry `name` carries the given hash and size."""
    target = lock.get(name)
    entries = tuple(
        replace(e, sha256=sha256, size=size) if e is target else e for e in lock.entries
    )
    return replace(lock, entries=entries)
