"""Fetches the pinned downloads of `downloads.lock` into a cache keyed by SHA-256.

A file is only ever used after its SHA-256 (and size, when pinned) matched the lock: it is
streamed to a temporary name next to its cache slot and renamed into place on success, so an
interrupted or corrupt transfer never looks like a cached file. The cache lives outside the
work tree (`<cache>/downloads/<sha256>`, the builder's cache: $MVIRT_CACHE_DIR, else
~/.cache/mvirt) so clean builds, other
checkouts and offline builds reuse it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mvirt_build import debfetch
from mvirt_build.config import default_cache_dir
from mvirt_build.errors import BuildError
from mvirt_build.hashing import sha256_and_size
from mvirt_build.lockfile import DownloadsLock, LockEntry

log = logging.getLogger("mvirt_build")

CHUNK = 1 << 16


def downloads_cache(cache_dir: Path | None = None) -> Path:
    """Where verified downloads are kept, one file per SHA-256: `downloads/` of the build's
    cache folder (--cache-dir), else of the default one."""
    return (cache_dir or default_cache_dir()) / "downloads"


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch: timeouts in seconds (read = longest stall allowed), retries, progress."""

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    attempts: int = 4
    backoff: float = 2.0
    offline: bool = False
    progress: bool = True
    cache_dir: Path | None = None  # the build's cache folder (default: default_cache_dir())


@dataclass(frozen=True)
class Fetched:
    """A verified file ready to use, and where it came from (cache, download or local file)."""

    entry: LockEntry
    path: Path
    source: str


@dataclass
class FetchReport:
    """The outcome of fetching a lock: files that are ready and downloads that are missing."""

    fetched: list[Fetched] = field(default_factory=list)
    missing: list[tuple[LockEntry, str]] = field(default_factory=list)


def verify_against(entry: LockEntry, sha256: str, size: int, origin: str) -> None:
    """Fail unless (sha256, size) is what the lock pins for `entry`."""
    if entry.size is not None and size != entry.size:
        raise BuildError(
            f"{entry.name}: {origin} has {size} bytes, the lock pins {entry.size}",
            hint="the file is truncated or not the pinned release",
        )
    if sha256 != entry.sha256:
        raise BuildError(
            f"{entry.name}: SHA-256 mismatch for {origin}: got {sha256}, lock pins {entry.sha256}",
            hint="the file is not the pinned one; if upstream really changed it, pin the new "
            f"file with `mvirt-build lock {entry.name} --file PATH` after checking it",
        )


def check_content(entry: LockEntry, path: Path) -> None:
    """Apply the lock's content check (x86-64 ELF, static) to a verified file."""
    if entry.check in ("elf", "elf-static"):
        from mvirt_build.elfcheck import check_elf  # noqa: PLC0415 - only when there is one

        check_elf(path, static=entry.check == "elf-static", what=entry.name)


@contextmanager
def temp_slot(final: Path) -> Iterator[Path]:
    """A temporary path next to `final` that is removed unless the caller renamed it away."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.part-{os.getpid()}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def fetch(entry: LockEntry, opts: FetchOptions, local: Path | None = None) -> Fetched:
    """Make `entry` available from the cache, a local file, or a download, in that order."""
    if not entry.pinned:
        raise BuildError(
            f"{entry.name}: downloads.lock has no SHA-256 for {entry.url}, so it cannot be "
            "verified",
            hint=f"check a copy by hand, then pin it with `mvirt-build lock {entry.name} "
            "--file PATH`",
        )
    assert entry.sha256 is not None
    cached = downloads_cache(opts.cache_dir) / entry.sha256
    if cached.exists():
        sha256, size = sha256_and_size(cached)
        if sha256 == entry.sha256 and (entry.size is None or size == entry.size):
            check_content(entry, cached)
            return Fetched(entry, cached, "cache")
        log.warning("%s: cached copy %s is corrupt, fetching again", entry.name, cached)
        cached.unlink()
    if local is not None:
        if not local.is_file():
            raise BuildError(f"{entry.name}: local file {local} does not exist")
        sha256, size = sha256_and_size(local)
        verify_against(entry, sha256, size, str(local))
        check_content(entry, local)
        with temp_slot(cached) as tmp:
            shutil.copyfile(local, tmp)
            os.replace(tmp, cached)
        return Fetched(entry, cached, "local")
    if entry.from_apt and not opts.offline:
        with temp_slot(cached) as tmp:
            debfetch.download_deb(entry.url, tmp)
            sha256, size = sha256_and_size(tmp)
            verify_against(entry, sha256, size, entry.url)
            os.replace(tmp, cached)
        return Fetched(entry, cached, "apt")
    if opts.offline:
        raise BuildError(
            f"{entry.name}: not in the cache ({cached}) and offline",
            hint=f"give a local copy with --download {entry.name}=PATH",
        )
    from mvirt_build.download import download  # noqa: PLC0415 - the network stack, on demand

    download(entry, cached, opts)
    return Fetched(entry, cached, "download")


def fetch_all(
    lock: DownloadsLock,
    opts: FetchOptions,
    local_files: Mapping[str, Path] | None = None,
    *,
    allow_missing: bool = False,
    names: list[str] | None = None,
) -> FetchReport:
    """Fetch every entry (or those in `names`). A failure stops everything unless
    `allow_missing`, in which case it is recorded in the report's `missing` list instead."""
    local_files = local_files or {}
    for name in local_files:
        lock.get(name)  # an unknown name is a typo: fail early and say so
    report = FetchReport()
    for entry in lock.entries:
        if names is not None and entry.name not in names:
            continue
        try:
            report.fetched.append(fetch(entry, opts, local_files.get(entry.name)))
        except BuildError as exc:
            if not allow_missing:
                raise
            report.missing.append((entry, str(exc)))
    return report


def installed_content(item: Fetched) -> bytes:
    """What goes into the image for a fetched entry: the file, or its member for a .deb."""
    if item.entry.member:
        return debfetch.extract_member(item.path, item.entry.member)
    return item.path.read_bytes()
