"""Serial console bridging: one connection to the VM's serial socket, many viewers.

The hub reads everything the guest writes, keeps the last ``scrollback`` bytes so a viewer
attaching late sees recent output, and fans each chunk out to every viewer. Keystrokes from
any viewer go to the guest. A viewer that cannot keep up loses its oldest chunks rather than
slowing the guest or the other viewers down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from pathlib import Path

from mvirt.vmm.serial_log import LogRotator

log = logging.getLogger("mvirt.vmm.console")

SCROLLBACK_BYTES = 64 * 1024
_VIEWER_QUEUE = 256
_CHUNK = 4096


class Viewer:
    """One attached console client: an async source of output chunks (None = console closed)."""

    def __init__(self, backlog: bytes) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_VIEWER_QUEUE)
        if backlog:
            self.queue.put_nowait(backlog)

    def push(self, chunk: bytes | None) -> None:
        """Queue a chunk, dropping the oldest one when this viewer is too slow."""
        while True:
            try:
                self.queue.put_nowait(chunk)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()


class ConsoleHub:
    """Bridges one VM's serial socket to any number of viewers."""

    def __init__(
        self, socket_path: Path, backlog: bytes = b"", rotator: LogRotator | None = None
    ) -> None:
        self.socket_path = socket_path
        self._rotator = rotator
        self._scrollback: deque[bytes] = deque()
        self._scrollback_size = 0
        self._remember(backlog[-SCROLLBACK_BYTES:])
        self._viewers: set[Viewer] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def _remember(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._scrollback.append(chunk)
        self._scrollback_size += len(chunk)
        while self._scrollback_size - len(self._scrollback[0]) >= SCROLLBACK_BYTES:
            self._scrollback_size -= len(self._scrollback.popleft())

    @property
    def scrollback(self) -> bytes:
        """The most recent output (at most about :data:`SCROLLBACK_BYTES`)."""
        return b"".join(self._scrollback)[-SCROLLBACK_BYTES:]

    def start(self) -> None:
        """Start reading the serial socket in the background."""
        self._task = asyncio.create_task(self._run(), name=f"console {self.socket_path}")

    async def _run(self) -> None:
        # The hypervisor creates the socket a moment after it starts; retry until it is there.
        reader: asyncio.StreamReader | None = None
        for _ in range(500):
            try:
                reader, self._writer = await asyncio.open_unix_connection(str(self.socket_path))
                break
            except OSError:
                await asyncio.sleep(0.02)
        if reader is None:
            log.warning("serial socket %s never became available", self.socket_path)
            self._finish()
            return
        self._connected.set()
        try:
            while chunk := await reader.read(_CHUNK):
                self._remember(chunk)
                if self._rotator is not None:
                    self._rotator.wrote(len(chunk))
                for viewer in list(self._viewers):
                    viewer.push(chunk)
        except OSError as exc:
            log.info("serial socket %s closed: %s", self.socket_path, exc)
        self._finish()

    def _finish(self) -> None:
        self.closed = True
        for viewer in list(self._viewers):
            viewer.push(None)
        self._viewers.clear()

    @property
    def viewer_count(self) -> int:
        """Viewers attached now."""
        return len(self._viewers)

    def attach(self) -> Viewer:
        """A new viewer, primed with the scrollback."""
        viewer = Viewer(self.scrollback)
        if self.closed:
            viewer.push(None)
        else:
            self._viewers.add(viewer)
        return viewer

    def detach(self, viewer: Viewer) -> None:
        """Remove a viewer (its client went away)."""
        self._viewers.discard(viewer)

    async def send(self, data: bytes) -> None:
        """Write keystrokes to the guest; waits briefly for the connection to exist."""
        if not data or self.closed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5)
        if self._writer is None:
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            log.info("write to serial socket %s failed: %s", self.socket_path, exc)

    async def close(self) -> None:
        """Stop the bridge and release every viewer."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._finish()
