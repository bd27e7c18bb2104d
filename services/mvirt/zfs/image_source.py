"""Where an imported image comes from and what it is: local files allowed by policy, http(s)
downloads resumed with Range, compression (xz, zstd, gzip) and format (qcow2 or raw) told by
content, never by the name.

The blocking parts run in a worker thread and check a stop flag between chunks, so a
cancelled import stops within one chunk.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
import zstandard

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.zfs.process import CommandError, run

CHUNK = 1 << 20
DOWNLOAD_RETRIES = 3
QCOW2_MAGIC = b"QFI\xfb"
COMPRESSION_MAGIC = {
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\x1f\x8b": "gzip",
}

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total; 0 when unknown)."""


class ImportFailedError(Exception):
    """The source cannot become a template; the message says why."""


class StoppedError(Exception):
    """The job was cancelled while a worker thread was copying."""


@dataclass(frozen=True)
class Source:
    """A checked import source: a local path or an http(s) URL."""

    url: str | None
    path: Path | None

    @property
    def is_remote(self) -> bool:
        """Whether the image must be downloaded."""
        return self.url is not None


def check_source(value: str, roots: Sequence[Path]) -> Source:
    """The source of an ImportTemplate request, or INVALID_ARGUMENT naming ``source``.

    Local files must be regular files under one of ``roots`` after symlinks are resolved."""
    if not value:
        raise InvalidArgumentError("source is required: an absolute file path or http(s) URL")
    if any(ord(c) < 32 for c in value):
        raise InvalidArgumentError("source contains control characters")
    scheme = urlsplit(value).scheme
    if scheme in ("http", "https"):
        if not urlsplit(value).hostname:
            raise InvalidArgumentError(f"source {value!r} is not a valid URL: it names no host")
        return Source(url=value, path=None)
    if scheme and not value.startswith("/"):
        raise InvalidArgumentError(
            f"source {value!r}: only http and https URLs or absolute file paths are supported"
        )
    if not value.startswith("/"):
        raise InvalidArgumentError(
            f"source {value!r} is a relative path; give an absolute path (the daemon does not "
            "share the client's working directory)"
        )
    resolved = Path(os.path.realpath(value))
    if not any(resolved == root or root in resolved.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise InvalidArgumentError(
            f"source {value!r} is outside the directories imports may read ({allowed}); "
            "move the file there or start mvirt-zfs with --import-root"
        )
    if not resolved.is_file():
        raise InvalidArgumentError(f"source {value!r} is not a regular file")
    if not os.access(resolved, os.R_OK):
        raise InvalidArgumentError(f"source {value!r} is not readable by mvirt-zfs")
    return Source(url=None, path=resolved)


def download(url: str, target: Path, progress: Progress, stop: threading.Event) -> None:
    """Streams ``url`` into ``target``; an interrupted transfer continues with a Range request
    where the server allows it. Raises ImportFailedError for an HTTP error or a truncated body."""
    done = 0
    total = 0
    attempts = 0
    with open(target, "wb") as out:
        while True:
            headers = {"Range": f"bytes={done}-"} if done else {}
            if not done:
                out.seek(0)
                out.truncate()
            try:
                with requests.get(url, stream=True, timeout=(10, 60), headers=headers) as reply:
                    if done and reply.status_code != 206:
                        raise ImportFailedError(
                            f"download of {url} broke off after {done} bytes and the server "
                            "does not resume (no Range support)"
                        )
                    if not done and reply.status_code != 200:
                        raise ImportFailedError(
                            f"server answered {reply.status_code} {reply.reason} for {url}"
                        )
                    if not done:
                        total = int(reply.headers.get("Content-Length", "0") or 0)
                    for chunk in reply.raw.stream(CHUNK, decode_content=False):
                        if stop.is_set():
                            raise StoppedError
                        out.write(chunk)
                        done += len(chunk)
                        progress(done, total)
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                if isinstance(exc, ImportFailedError | StoppedError):
                    raise
                # urllib3 reports a body shorter than Content-Length as ProtocolError.
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if not total or done >= total:
                    return
                reason = f"connection closed after {done} of {total} bytes"
            attempts += 1
            if attempts > DOWNLOAD_RETRIES:
                raise ImportFailedError(f"download of {url} failed: {reason}")
            if total and done >= total:
                return


def compression_of(path: Path) -> str | None:
    """``xz``, ``zstd``, ``gzip`` or None, by the file's first bytes."""
    with open(path, "rb") as file:
        head = file.read(8)
    for magic, name in COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _open_decompressed(raw_in: BinaryIO, kind: str) -> BinaryIO:
    if kind == "xz":
        return lzma.LZMAFile(raw_in)  # type: ignore[return-value]
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw_in)  # type: ignore[return-value]
    return zstandard.ZstdDecompressor().stream_reader(raw_in)


def decompress(
    path: Path, kind: str, target: Path, progress: Progress, stop: threading.Event
) -> None:
    """Writes the decompressed ``path`` to ``target``, leaving zero runs as holes; raises
    ImportFailedError when the stream is damaged or cut short."""
    total = path.stat().st_size
    zero = bytes(CHUNK)
    with (
        open(path, "rb") as raw_in,
        _open_decompressed(raw_in, kind) as data,
        open(target, "wb") as out,
    ):
        try:
            while chunk := data.read(CHUNK):
                if stop.is_set():
                    raise StoppedError
                if chunk == zero[: len(chunk)]:
                    out.seek(len(chunk), os.SEEK_CUR)
                else:
                    out.write(chunk)
                progress(min(raw_in.tell(), total), total)
            out.truncate()
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zstandard.ZstdError) as exc:
            raise ImportFailedError(f"the {kind} stream is damaged or truncated: {exc}") from None


@dataclass(frozen=True)
class ImageInfo:
    """What an image is: ``raw`` or ``qcow2`` and its virtual size."""

    format: str
    virtual_size: int


async def inspect(path: Path, qemu_img: str = "qemu-img") -> ImageInfo:
    """The image's format by content and its virtual size; qcow2 images that refer to other
    files (backing file, external data file) are refused, as they could read host files."""
    with open(path, "rb") as file:
        head = file.read(4)
    if head != QCOW2_MAGIC:
        return ImageInfo("raw", path.stat().st_size)
    try:
        out = await run([qemu_img, "info", "-f", "qcow2", "--output=json", str(path)])
    except CommandError as exc:
        raise ImportFailedError(f"the qcow2 image is not readable: {exc.reason}") from None
    info = json.loads(out.stdout)
    data_file = info.get("format-specific", {}).get("data", {}).get("data-file")
    if info.get("backing-filename") or data_file:
        raise ImportFailedError(
            "the qcow2 image refers to another file (backing or data file); flatten it with "
            "`qemu-img convert -O qcow2` first"
        )
    return ImageInfo("qcow2", int(info["virtual-size"]))
