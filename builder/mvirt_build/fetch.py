"""Fetches the pinned downloads of `downloads.lock` into a cache keyed by SHA-256.

A file is only ever used after its SHA-256 (and size, when pinned) matched the lock: it is
streamed to a temporary name next to its cache slot and renamed into place on success, so an
interrupted or corrupt transfer never looks like a cached file. The cache lives outside the
work tree (`<cache>/downloads/<sha256>`, the builder's cache: $MVIRT_CACHE_DIR, else
~/.cache/mvirt) so clean builds, other
checkouts and offline builds reuse it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mvirt_build import debfetch
from mvirt_build.config import default_cache_dir
from mvirt_build.elfcheck import check_elf
from mvirt_build.errors import BuildError
from mvirt_build.lockfile import DownloadsLock, LockEntry

log = logging.getLogger("mvirt_build")

CHUNK = 1 << 16


def downloads_cache() -> Path:
    """Where verified downloads are kept, one file per SHA-256."""
    return default_cache_dir() / "downloads"


@dataclass(frozen=True)
class FetchOptions:
    """How to fetch: timeouts in seconds (read = longest stall allowed), retries, progress."""

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    attempts: int = 4
    backoff: float = 2.0
    offline: bool = False
    progress: bool = True


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


def sha256_file(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size of `path`, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


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
    if entry.check == "elf":
        check_elf(path, static=False, what=entry.name)
    elif entry.check == "elf-static":
        check_elf(path, static=True, what=entry.name)


class _RetryableError(Exception):
    """A transfer failure worth another attempt (network error, stall, truncation, 5xx)."""


@contextmanager
def _temp_slot(final: Path) -> Iterator[Path]:
    """A temporary path next to `final` that is removed unless the caller renamed it away."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.part-{os.getpid()}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def _download_once(
    session: requests.Session, entry: LockEntry, tmp: Path, opts: FetchOptions
) -> tuple[str, int]:
    """One attempt: stream `entry.url` into `tmp`, returning its SHA-256 and size."""
    try:
        response = session.get(
            entry.url, stream=True, timeout=(opts.connect_timeout, opts.read_timeout)
        )
    except requests.Timeout as exc:
        raise _RetryableError(f"timed out connecting ({exc.__class__.__name__})") from exc
    except requests.RequestException as exc:
        if "NameResolutionError" in str(exc) or "Name or service not known" in str(exc):
            # Nothing to wait for: this machine cannot even resolve the host.
            host = urlsplit(entry.url).hostname
            raise BuildError(
                f"{entry.name}: cannot resolve {host} (no network or DNS)",
                hint=f"give a local copy with --download {entry.name}=PATH, or build without "
                "it with --allow-missing-downloads",
            ) from None
        raise _RetryableError(f"cannot connect: {exc}") from exc
    with response:
        if response.status_code == 404:
            raise BuildError(
                f"{entry.name}: {entry.url} does not exist (HTTP 404)",
                hint="the release was moved or removed; fix the URL in downloads.lock",
            )
        if response.status_code >= 500:
            raise _RetryableError(f"server error HTTP {response.status_code}")
        if response.status_code != 200:
            raise BuildError(f"{entry.name}: {entry.url} answered HTTP {response.status_code}")
        announced = response.headers.get("Content-Length")
        expected = entry.size or (int(announced) if announced and announced.isdigit() else None)
        digest = hashlib.sha256()
        size = 0
        with _progress(opts.progress) as progress, tmp.open("wb") as out:
            task = progress.add_task(entry.name, total=expected)
            try:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    progress.update(task, completed=size)
                    if entry.size is not None and size > entry.size:
                        raise BuildError(
                            f"{entry.name}: {entry.url} sends more than the pinned "
                            f"{entry.size} bytes",
                            hint="the file is not the pinned release",
                        )
            except requests.exceptions.ConnectionError as exc:
                if "timed out" in str(exc).lower():
                    raise _RetryableError(
                        f"stalled: no data for {opts.read_timeout:g} s after {size} bytes"
                    ) from exc
                raise _RetryableError(f"transfer broken after {size} bytes: {exc}") from exc
            except requests.RequestException as exc:
                raise _RetryableError(f"transfer broken after {size} bytes: {exc}") from exc
        if expected is not None and size < expected:
            raise _RetryableError(f"truncated: got {size} of {expected} bytes")
        return digest.hexdigest(), size


def download(entry: LockEntry, dest: Path, opts: FetchOptions) -> None:
    """Download `entry` to `dest` with retries and backoff, verified before it is renamed there."""
    last = ""
    with requests.Session() as session, _temp_slot(dest) as tmp:
        for attempt in range(1, opts.attempts + 1):
            try:
                sha256, size = _download_once(session, entry, tmp, opts)
            except _RetryableError as exc:
                last = str(exc)
                log.warning("%s: attempt %d/%d: %s", entry.name, attempt, opts.attempts, last)
                if attempt < opts.attempts:
                    time.sleep(opts.backoff * 2 ** (attempt - 1))
                continue
            verify_against(entry, sha256, size, entry.url)
            check_content(entry, tmp)
            os.replace(tmp, dest)
            return
    raise BuildError(
        f"{entry.name}: could not download {entry.url} after {opts.attempts} attempts: {last}",
        hint=f"give a local copy with --download {entry.name}=PATH, or build without it "
        "with --allow-missing-downloads",
    )


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
    cached = downloads_cache() / entry.sha256
    if cached.exists():
        sha256, size = sha256_file(cached)
        if sha256 == entry.sha256 and (entry.size is None or size == entry.size):
            check_content(entry, cached)
            return Fetched(entry, cached, "cache")
        log.warning("%s: cached copy %s is corrupt, fetching again", entry.name, cached)
        cached.unlink()
    if local is not None:
        if not local.is_file():
            raise BuildError(f"{entry.name}: local file {local} does not exist")
        sha256, size = sha256_file(local)
        verify_against(entry, sha256, size, str(local))
        check_content(entry, local)
        with _temp_slot(cached) as tmp:
            shutil.copyfile(local, tmp)
            os.replace(tmp, cached)
        return Fetched(entry, cached, "local")
    if entry.from_apt and not opts.offline:
        with _temp_slot(cached) as tmp:
            debfetch.download_deb(entry.url, tmp)
            sha256, size = sha256_file(tmp)
            verify_against(entry, sha256, size, entry.url)
            os.replace(tmp, cached)
        return Fetched(entry, cached, "apt")
    if opts.offline:
        raise BuildError(
            f"{entry.name}: not in the cache ({cached}) and offline",
            hint=f"give a local copy with --download {entry.name}=PATH",
        )
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


def install_into(report: FetchReport, root: Path) -> list[Path]:
    """Copy every fetched file that has an `install` path into the tree at `root`."""
    placed: list[Path] = []
    for item in report.fetched:
        if not item.entry.install:
            continue
        target = root / item.entry.install.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(installed_content(item))
        target.chmod(item.entry.mode)
        placed.append(target)
    return placed
