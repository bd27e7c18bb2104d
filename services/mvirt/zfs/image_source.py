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
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
import urllib3
import zstandard

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.zfs.process import CommandError, run

CHUNK = 1 << 16
DOWNLOAD_RETRIES = 3
QCOW2_MAGIC = b"QFI\xfb"
CHECK_LEAKS_ONLY = 3
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


class Download:
    """One http(s) download into a file; :meth:`abort` (from any thread) ends it at once,
    even while it waits for a silent server."""

    def __init__(self, url: str, target: Path, progress: Progress) -> None:
        self.url = url
        self.target = target
        self.progress = progress
        self.stop = threading.Event()
        self._reply: requests.Response | None = None
        self.done = 0
        self.total = 0

    def abort(self) -> None:
        """Stops the transfer: a blocked read returns when its socket is shut down."""
        self.stop.set()
        reply = self._reply
        if reply is None:
            return
        try:
            # shutdown() acts on the socket itself, so a duplicate descriptor reaches it.
            with socket.socket(fileno=os.dup(reply.raw.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass  # the response ended meanwhile

    def run(self) -> None:
        """Streams the URL into the file; an interrupted transfer continues with a Range
        request where the server allows it. Raises ImportFailedError for an HTTP error or a
        body that stays short, StoppedError after :meth:`abort`."""
        attempts = 0
        with open(self.target, "wb") as out:
            while True:
                try:
                    self._attempt(out)
                    if not self.total or self.done >= self.total:
                        return
                    reason = f"connection closed after {self.done} of {self.total} bytes"
                except (requests.RequestException, OSError, urllib3.exceptions.HTTPError) as exc:
                    if self.stop.is_set():
                        raise StoppedError from None
                    reason = f"{type(exc).__name__}: {exc}"
                attempts += 1
                if attempts > DOWNLOAD_RETRIES:
                    raise ImportFailedError(f"download of {self.url} failed: {reason}")

    def _attempt(self, out: BinaryIO) -> None:
        done, total = self.done, self.total
        headers = {"Range": f"bytes={done}-"} if done else {}
        if not done:
            out.seek(0)
            out.truncate()
        with requests.get(self.url, stream=True, timeout=(10, 60), headers=headers) as reply:
            self._reply = reply
            if done and reply.status_code != 206:
                raise ImportFailedError(
                    f"download of {self.url} broke off after {done} of {total} bytes and the "
                    "server does not resume (no Range support)"
                )
            if not done and reply.status_code != 200:
                raise ImportFailedError(
                    f"server answered {reply.status_code} {reply.reason} for {self.url}"
                )
            if not done:
                total = self.total = int(reply.headers.get("Content-Length", "0") or 0)
            try:
                while chunk := reply.raw.read1(CHUNK):
                    if self.stop.is_set():
                        raise StoppedError
                    out.write(chunk)
                    self.done += len(chunk)
                    self.progress(self.done, total)
            finally:
                self._reply = None
                if self.stop.is_set():
                    raise StoppedError


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
    with (
        open(path, "rb") as raw_in,
        _open_decompressed(raw_in, kind) as data,
        open(target, "wb") as out,
    ):
        try:
            while chunk := data.read(CHUNK):
                if stop.is_set():
                    raise StoppedError
                if chunk.count(0) == len(chunk):
                    out.seek(len(chunk), os.SEEK_CUR)
                else:
                    out.write(chunk)
                progress(min(raw_in.tell(), total), total)
            out.truncate()
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zstandard.ZstdError) as exc:
            raise ImportFailedError(f"the {kind} stream is damaged or truncated: {exc}") from None


async def verify_zstd(path: Path, zstd: str = "zstd") -> None:
    """Raises ImportFailedError unless ``path`` is a complete zstd stream. The zstandard
    module's readers end quietly at a cut inside a frame, so ``zstd -t`` checks first."""
    try:
        await run([zstd, "-t", "-q", str(path)])
    except CommandError as exc:
        raise ImportFailedError(f"the zstd stream is damaged or truncated: {exc.reason}") from None


@dataclass(frozen=True)
class ImageInfo:
    """What an image is: ``raw`` or ``qcow2`` and its virtual size."""

    format: str
    virtual_size: int


async def inspect(path: Path, qemu_img: str = "qemu-img") -> ImageInfo:
    """The image's format by content and its virtual size; qcow2 images that refer to other
    files (backing file, external data file) are refused, as they could read host files.
    A qcow2 image's consistency is :func:`check_qcow2`'s job."""
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


async def check_qcow2(path: Path, qemu_img: str = "qemu-img") -> None:
    """Raises ImportFailedError when the qcow2 image (already accepted by :func:`inspect`)
    is damaged or truncated: ``qemu-img convert`` would read a cut-off image's missing
    clusters as zeros and succeed."""
    try:
        await run([qemu_img, "check", "-f", "qcow2", "--output=json", str(path)])
    except CommandError as exc:
        # 3: only leaked clusters (harmless); 2: corruptions, e.g. a truncated file.
        if exc.returncode != CHECK_LEAKS_ONLY:
            raise ImportFailedError(
                f"the qcow2 image is damaged or truncated (qemu-img check: {exc.reason})"
            ) from None
