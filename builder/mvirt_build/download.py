"""Downloading one pinned file: streamed to a temporary name next to its cache slot with a
progress bar, retried with backoff on network errors, stalls, truncation and 5xx, verified
against the lock before it is renamed into place. Imported only when something must be
downloaded (the network stack is slow to import)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
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

from mvirt_build.errors import BuildError
from mvirt_build.fetch import CHUNK, FetchOptions, check_content, temp_slot, verify_against
from mvirt_build.lockfile import LockEntry

log = logging.getLogger("mvirt_build")


class _RetryableError(Exception):
    """A transfer failure worth another attempt (network error, stall, truncation, 5xx)."""


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
    with requests.Session() as session, temp_slot(dest) as tmp:
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
