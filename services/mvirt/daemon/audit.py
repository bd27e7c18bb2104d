"""The audit client every daemon uses to record its mutations in mvirt-log.

``audit.log(level, message, related_ids)`` returns at once: the entry gets its id and
timestamp, is written to the local structured log, and is queued. A background task delivers
queued entries in batches (``LogService.LogBatch``). While mvirt-log cannot be reached, entries
move to a bounded on-disk spool in the daemon's data dir, and new entries queue behind them;
when the service is back the spool is delivered oldest first, then the queue. Entries carry
client-assigned ids, so a batch retried after a lost acknowledgement is not stored twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

import grpc

from mvirt.daemon.spool import AuditSpool
from mvirt.daemon.ulid import new_ulid
from mvirt.log import limits
from mvirt.proto import log_pb2, log_pb2_grpc

SPOOL_FILE = "audit-spool.sqlite3"
_TRUNCATED = " [truncated]"


class AuditLogger:
    """Non-blocking, loss-free audit log client (see module docstring)."""

    def __init__(
        self,
        component: str,
        endpoint: str | None,
        data_dir: Path,
        *,
        logger: logging.Logger | None = None,
        batch_size: int = 500,
        max_spool_entries: int = 1_000_000,
        rpc_timeout: float = 5.0,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
    ) -> None:
        limits.check_component(component, "component")
        self.component = component
        self.endpoint = endpoint
        self._logger = logger or logging.getLogger(f"mvirt.{component}.audit")
        self._spool_path = data_dir / SPOOL_FILE
        self._max_spool_entries = max_spool_entries
        self._batch_size = min(batch_size, limits.MAX_BATCH_ENTRIES)
        self._rpc_timeout = rpc_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._queue: collections.deque[log_pb2.LogEntry] = collections.deque()
        self._spool: AuditSpool | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: log_pb2_grpc.LogServiceStub | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._retry_at = 0.0
        self._retry_delay = retry_initial

    @property
    def pending(self) -> int:
        """Entries not yet acknowledged by mvirt-log (queued in memory or spooled)."""
        return len(self._queue) + (len(self._spool) if self._spool else 0)

    @property
    def spooled(self) -> int:
        """Entries waiting in the on-disk spool."""
        return len(self._spool) if self._spool else 0

    async def start(self) -> None:
        """Opens the spool and starts delivering (spooled entries from a previous run first)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.endpoint is None:
            return
        self._spool = await asyncio.to_thread(AuditSpool, self._spool_path, self._max_spool_entries)
        self._channel = grpc.aio.insecure_channel(self.endpoint)
        self._stub = log_pb2_grpc.LogServiceStub(self._channel)
        self._task = asyncio.create_task(self._deliver_forever(), name="audit-delivery")

    def log(
        self, level: int, message: str, related_ids: Iterable[str] = (), *, component: str = ""
    ) -> str:
        """Records one entry and returns its id; never blocks on the network or disk."""
        entry = log_pb2.LogEntry(
            timestamp_ns=time.time_ns(),
            level=level if level in limits.LEVELS else log_pb2.AUDIT,  # type: ignore[arg-type]
            component=component if _valid_component(component) else self.component,
            message=_fit_message(message),
            related_object_ids=self._usable_ids(related_ids),
        )
        entry.id = new_ulid(entry.timestamp_ns)
        self._logger.info(
            entry.message,
            extra={
                "audit_id": entry.id,
                "audit_level": log_pb2.LogLevel.Name(entry.level),
                "related_ids": list(entry.related_object_ids),
            },
        )
        if self._task is None:
            return entry.id
        self._queue.append(entry)
        if self._loop is not None and self._wake is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                self._wake.set()
            else:
                self._loop.call_soon_threadsafe(self._wake.set)
        return entry.id

    async def flush(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds until every entry is acknowledged; True if so."""
        deadline = time.monotonic() + timeout
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self, timeout: float = 2.0) -> None:
        """Delivers what it can within ``timeout``, spools the rest, and releases resources."""
        if self._task is not None:
            if self._retry_at <= asyncio.get_running_loop().time():
                await self.flush(timeout)
            # Stop at the next safe point (never in the middle of a batch), then keep the
            # rest on disk for the next start.
            self._closing = True
            if self._wake is not None:
                self._wake.set()
            await self._task
            await self._spill_queue()
            self._task = None
        if self._channel is not None:
            await self._channel.close()
        if self._spool is not None:
            await asyncio.to_thread(self._spool.close)

    def _usable_ids(self, related_ids: Iterable[str]) -> list[str]:
        usable: list[str] = []
        for object_id in related_ids:
            if len(usable) == limits.MAX_RELATED_IDS:
                self._logger.warning("audit entry has too many related ids; extra ids dropped")
                break
            if limits.OBJECT_ID_PATTERN.match(object_id) is None:
                self._logger.warning(
                    "invalid related id dropped from audit entry", extra={"object_id": object_id}
                )
                continue
            usable.append(object_id)
        return usable

    async def _deliver_forever(self) -> None:
        assert self._wake is not None and self._spool is not None
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._wake.clear()
            if not self._queue and not len(self._spool):
                await self._wake.wait()
                continue
            wait = self._retry_at - loop.time()
            if wait > 0:
                # mvirt-log is down: make new entries durable while waiting to retry.
                await self._spill_queue()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            await self._deliver_once()

    async def _deliver_once(self) -> None:
        assert self._spool is not None
        if len(self._spool):
            # Order: whatever waits in memory belongs behind the spool.
            await self._spill_queue()
            last_seq, batch = await asyncio.to_thread(self._spool.peek, self._batch_size)
            if await self._send(batch):
                await asyncio.to_thread(self._spool.remove_through, last_seq)
            return
        batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
        if not await self._send(batch):
            self._queue.extendleft(reversed(batch))
            await self._spill_queue()

    async def _send(self, batch: list[log_pb2.LogEntry]) -> bool:
        """Delivers ``batch``; False (and a retry scheduled) if mvirt-log did not take it."""
        assert self._stub is not None
        try:
            await self._stub.LogBatch(
                log_pb2.LogBatchRequest(entries=batch), timeout=self._rpc_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                # Retrying cannot help; the entries are in the local structured log already.
                self._logger.error(
                    "mvirt-log rejected audit entries; they remain only in this log",
                    extra={"ids": [e.id for e in batch], "reason": exc.details()},
                )
                return True
            if self._retry_delay == self._retry_initial:
                self._logger.warning(
                    "mvirt-log unreachable; spooling audit entries",
                    extra={"endpoint": self.endpoint, "reason": exc.code().name},
                )
            self._retry_at = asyncio.get_running_loop().time() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self._retry_max)
            return False
        if self._retry_delay != self._retry_initial:
            self._logger.info("mvirt-log reachable again; delivering spooled audit entries")
        self._retry_delay = self._retry_initial
        self._retry_at = 0.0
        return True

    async def _spill_queue(self) -> None:
        if not self._queue or self._spool is None:
            return
        batch = list(self._queue)
        self._queue.clear()
        stored = await asyncio.to_thread(self._spool.append, batch)
        if stored < len(batch):
            self._logger.error(
                "audit spool full; entries remain only in this log",
                extra={"ids": [e.id for e in batch[stored:]], "spool": str(self._spool.path)},
            )


def _valid_component(component: str) -> bool:
    return limits.COMPONENT_PATTERN.match(component) is not None


def _fit_message(message: str) -> str:
    encoded = message.encode("utf-8", "replace")
    if not encoded:
        return "(empty)"
    if len(encoded) <= limits.MAX_MESSAGE_BYTES:
        return message
    room = limits.MAX_MESSAGE_BYTES - len(_TRUNCATED)
    return encoded[:room].decode("utf-8", "ignore") + _TRUNCATED
