"""The audit client every daemon uses to record its mutations in mvirt-log.

``audit.log(level, message, related_ids)`` returns at once and never raises: the entry gets
its id and timestamp, is written to the local structured log, and is queued. A background task
delivers queued entries in batches (``LogService.LogBatch``) of at most
``MAX_BATCH_ENTRIES`` entries and ``MAX_REQUEST_BYTES`` bytes. While mvirt-log cannot be
reached, entries move to a bounded on-disk spool in the daemon's data dir, and new entries
queue behind them; when the service is back the spool is delivered oldest first, then the
queue. Entries carry client-assigned ids, so a batch retried after a lost acknowledgement is
not stored twice.

No entry is lost on the way:

- an entry leaves the memory queue only once the spool holds it (a spool write that fails,
  e.g. on a full disk, leaves the queue as it was and is retried; entries that do not fit in a
  full spool wait in memory);
- a batch mvirt-log refuses as too large (RESOURCE_EXHAUSTED) is split in halves;
- a batch refused as invalid is split until the offending entry is alone, and only that
  entry moves to the spool's quarantine, with mvirt-log's reason; the rest is delivered;
- a spool row that does not decode is quarantined the same way;
- the delivery task is supervised: if it fails unexpectedly, the failure is logged and it
  starts again after a short pause;
- ``pending`` counts queued, in-flight and spooled entries, so ``flush()`` returns True only
  when mvirt-log has acknowledged everything.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc

from mvirt.daemon import log_limits as limits
from mvirt.daemon.spool import AuditSpool, SpooledEntry, open_spool
from mvirt.daemon.ulid import new_ulid
from mvirt.proto import log_pb2, log_pb2_grpc

SPOOL_FILE = "audit-spool.sqlite3"
MAX_QUEUE_ENTRIES = 1_000_000
_SPILL_CHUNK = 100
_TRUNCATED = " [truncated]"
# Bytes a LogBatchRequest spends on one entry besides the entry itself (tag and length).
_ENTRY_FRAMING = 6
# Room left in a batch for the request's own framing and gRPC's.
_REQUEST_SLACK = 1024


class _RejectedError(Exception):
    """mvirt-log refused one entry as invalid (INVALID_ARGUMENT)."""


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
        max_batch_bytes: int = limits.MAX_REQUEST_BYTES,
        max_spool_entries: int = 1_000_000,
        max_queue_entries: int = MAX_QUEUE_ENTRIES,
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
        self._max_queue_entries = max_queue_entries
        self._batch_size = max(1, min(batch_size, limits.MAX_BATCH_ENTRIES))
        self._max_batch_bytes = min(max_batch_bytes, limits.MAX_REQUEST_BYTES) - _REQUEST_SLACK
        self._rpc_timeout = rpc_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._queue: collections.deque[log_pb2.LogEntry] = collections.deque()
        self._in_flight = 0
        self._spool: AuditSpool | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: log_pb2_grpc.LogServiceStub | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._retry_at = 0.0
        self._retry_delay = retry_initial
        self._spool_problem: str | None = None

    @property
    def pending(self) -> int:
        """Entries not yet acknowledged by mvirt-log (queued, in flight or spooled)."""
        return len(self._queue) + self._in_flight + (len(self._spool) if self._spool else 0)

    @property
    def spooled(self) -> int:
        """Entries waiting in the on-disk spool."""
        return len(self._spool) if self._spool else 0

    @property
    def spool(self) -> AuditSpool | None:
        """The on-disk spool (None until started, or when sending is disabled)."""
        return self._spool

    async def start(self) -> None:
        """Opens the spool and starts delivering (spooled entries from a previous run first)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.endpoint is None:
            return
        self._spool, aside = await asyncio.to_thread(
            open_spool, self._spool_path, self._max_spool_entries
        )
        if aside is not None:
            self._logger.error(
                "audit spool was not a readable database; moved it aside and started a new one",
                extra={"spool": str(self._spool_path), "moved_to": str(aside)},
            )
        self._channel = grpc.aio.insecure_channel(
            self.endpoint, options=[("grpc.max_send_message_length", limits.MAX_REQUEST_BYTES)]
        )
        self._stub = log_pb2_grpc.LogServiceStub(self._channel)
        self._task = asyncio.create_task(self._supervise(), name="audit-delivery")

    def log(
        self, level: int, message: str, related_ids: Iterable[str] = (), *, component: str = ""
    ) -> str:
        """Records one entry and returns its id; never blocks on the network or disk and never
        raises for what it is given (bad parts are repaired or dropped, with a warning)."""
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
        if len(self._queue) >= self._max_queue_entries:
            self._logger.error(
                "audit queue full (mvirt-log down and the spool unusable); entry kept only "
                "in this log",
                extra={"audit_id": entry.id},
            )
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
            with contextlib.suppress(Exception):
                await self._spill_queue()
            if self._queue:
                self._logger.error(
                    "audit entries could not be spooled at shutdown; they remain only in this log",
                    extra={"ids": [e.id for e in self._queue]},
                )
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
            if not isinstance(object_id, str) or limits.OBJECT_ID_PATTERN.match(object_id) is None:
                self._logger.warning(
                    "invalid related id dropped from audit entry",
                    extra={"object_id": ascii(object_id)},
                )
                continue
            usable.append(object_id)
        return usable

    async def _supervise(self) -> None:
        """Runs the delivery loop; an unexpected failure is logged and the loop restarted."""
        while True:
            try:
                await self._deliver_forever()
                return
            except Exception:
                self._logger.exception("audit delivery failed; restarting it")
                self._schedule_retry()
                if self._closing:
                    return
                assert self._wake is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._retry_delay)

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
            rows = await asyncio.to_thread(
                self._spool.peek, self._batch_size, self._max_batch_bytes
            )
            await self._deliver_spooled(rows)
            return
        batch = self._take_batch()
        self._in_flight = len(batch)
        try:
            delivered = await self._send_all(batch)
        except BaseException:
            # Unknown outcome: put the batch back (mvirt-log ignores what it has stored).
            self._queue.extendleft(reversed(batch))
            raise
        finally:
            self._in_flight = 0
        if delivered < len(batch):
            self._queue.extendleft(reversed(batch[delivered:]))
            await self._spill_queue()

    def _take_batch(self) -> list[log_pb2.LogEntry]:
        batch: list[log_pb2.LogEntry] = []
        size = 0
        while self._queue and len(batch) < self._batch_size:
            entry_size = self._queue[0].ByteSize() + _ENTRY_FRAMING
            if batch and size + entry_size > self._max_batch_bytes:
                break
            batch.append(self._queue.popleft())
            size += entry_size
        return batch

    async def _deliver_spooled(self, rows: Sequence[SpooledEntry]) -> None:
        assert self._spool is not None
        good: list[SpooledEntry] = []
        for row in rows:
            if row.entry is None:
                await self._quarantine(row.blob, "the spooled entry does not decode", row.seq)
            else:
                good.append(row)
        if not good:
            return
        delivered = await self._send_all([row.entry for row in good if row.entry is not None])
        if delivered:
            await asyncio.to_thread(self._spool.mark_delivered, good[delivered - 1].seq, delivered)

    async def _send_all(self, batch: list[log_pb2.LogEntry]) -> int:
        """Delivers ``batch`` in order, splitting it as mvirt-log requires; returns how many
        entries from the front were delivered or quarantined (the rest waits for a retry)."""
        if not batch:
            return 0
        try:
            await self._send(batch)
            return len(batch)
        except _RejectedError as exc:
            # One entry is invalid (the batch was refused whole): quarantine just that one.
            if len(batch) == 1:
                await self._quarantine(batch[0].SerializeToString(), str(exc))
                return 1
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or len(batch) == 1:
                self._note_unreachable(exc)
                return 0
        half = len(batch) // 2
        first = await self._send_all(batch[:half])
        if first < half:
            return first
        return half + await self._send_all(batch[half:])

    async def _send(self, batch: list[log_pb2.LogEntry]) -> None:
        """Sends one LogBatch; raises _RejectedError (INVALID_ARGUMENT) or the gRPC error."""
        assert self._stub is not None
        try:
            await self._stub.LogBatch(
                log_pb2.LogBatchRequest(entries=batch), timeout=self._rpc_timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise _RejectedError(exc.details() or "INVALID_ARGUMENT") from None
            raise
        if self._retry_delay != self._retry_initial:
            self._logger.info("mvirt-log reachable again; delivering spooled audit entries")
        self._retry_delay = self._retry_initial
        self._retry_at = 0.0

    def _note_unreachable(self, exc: grpc.aio.AioRpcError) -> None:
        if self._retry_delay == self._retry_initial:
            self._logger.warning(
                "mvirt-log unreachable; spooling audit entries",
                extra={"endpoint": self.endpoint, "reason": exc.code().name},
            )
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._retry_at = asyncio.get_running_loop().time() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._retry_max)

    async def _quarantine(self, blob: bytes, reason: str, seq: int | None = None) -> None:
        assert self._spool is not None
        entry_id = ""
        with contextlib.suppress(Exception):
            entry_id = log_pb2.LogEntry.FromString(blob).id
        await asyncio.to_thread(self._spool.quarantine, blob, reason, seq)
        self._logger.error(
            "audit entry cannot be delivered; kept in the spool's quarantine",
            extra={"audit_id": entry_id, "reason": reason, "spool": str(self._spool.path)},
        )

    async def _spill_queue(self) -> None:
        """Moves queued entries to the spool, a chunk per transaction. Entries leave the queue
        only once the spool holds them; what does not fit (spool full, disk full, I/O error)
        keeps waiting in memory and is tried again later."""
        spool = self._spool
        if spool is None:
            return
        while self._queue:
            chunk = list(itertools.islice(self._queue, _SPILL_CHUNK))
            try:
                stored = await asyncio.to_thread(spool.append, chunk)
            except sqlite3.Error as exc:
                self._report_spool_problem(f"cannot write the audit spool: {exc}")
                return
            for _ in range(stored):
                self._queue.popleft()
            if stored < len(chunk):
                self._report_spool_problem("audit spool full")
                return
        self._spool_problem = None

    def _report_spool_problem(self, problem: str) -> None:
        if problem != self._spool_problem:
            self._logger.error(
                f"{problem}; entries wait in memory until mvirt-log takes them",
                extra={"waiting": len(self._queue), "spool": str(self._spool_path)},
            )
        self._spool_problem = problem


def _valid_component(component: str) -> bool:
    return limits.COMPONENT_PATTERN.match(component) is not None


def _fit_message(message: object) -> str:
    """``message`` as valid UTF-8 within the size limit: characters UTF-8 cannot carry (lone
    surrogates, e.g. undecodable bytes of a file name) are written as backslash escapes."""
    if not isinstance(message, str):
        message = str(message)
    encoded = message.encode("utf-8", "backslashreplace")
    if not encoded:
        return "(empty)"
    if len(encoded) <= limits.MAX_MESSAGE_BYTES:
        return encoded.decode("utf-8")
    room = limits.MAX_MESSAGE_BYTES - len(_TRUNCATED)
    return encoded[:room].decode("utf-8", "ignore") + _TRUNCATED
