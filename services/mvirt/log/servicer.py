"""LogService: validates requests, hands them to the store, streams query results."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator

import grpc

from mvirt.daemon import log_limits as limits
from mvirt.daemon.errors import InvalidArgumentError, UnavailableError
from mvirt.daemon.server import DaemonContext
from mvirt.daemon.version import package_version
from mvirt.log.store import LogStore, QueryFilter, Row, row_to_entry
from mvirt.proto import log_pb2, log_pb2_grpc

PAGE_BYTES = 1024 * 1024
"""A QueryPages message holds up to 1,000 entries and about this many bytes."""


def _checked(entry: log_pb2.LogEntry, field: str) -> log_pb2.LogEntry:
    limits.check_entry(entry, field)
    return entry


def query_filter(request: log_pb2.QueryRequest) -> QueryFilter:
    """The store filter for ``request``, or InvalidArgumentError naming the bad field."""
    flt = QueryFilter()
    if request.HasField("object_id"):
        limits.check_object_id(request.object_id, "object_id")
    if request.HasField("component"):
        limits.check_component(request.component, "component")
    for name in ("start_time_ns", "end_time_ns"):
        if request.HasField(name) and getattr(request, name) < 0:
            raise InvalidArgumentError(f"{name} is negative ({getattr(request, name)})")
    start = request.start_time_ns if request.HasField("start_time_ns") else flt.start_ns
    end = request.end_time_ns if request.HasField("end_time_ns") else flt.end_ns
    if start > end:
        raise InvalidArgumentError(
            f"start_time_ns ({start}) is after end_time_ns ({end}); the range is inclusive"
        )
    return QueryFilter(
        object_id=request.object_id if request.HasField("object_id") else None,
        component=request.component if request.HasField("component") else None,
        start_ns=start,
        end_ns=end,
    )


class LogServicer(log_pb2_grpc.LogServiceServicer):
    """The mvirt.log.LogService implementation."""

    def __init__(self, store: LogStore, ctx: DaemonContext) -> None:
        self._store = store
        self._ctx = ctx

    async def Log(  # noqa: N802 (gRPC method name)
        self, request: log_pb2.LogRequest, context: grpc.aio.ServicerContext
    ) -> log_pb2.LogResponse:
        """Stores one entry; returns its id once it is durable."""
        limits.check_request_size(request.ByteSize())
        if not request.HasField("entry"):
            raise InvalidArgumentError("entry is missing")
        entry = _checked(request.entry, "entry")
        ids = await self._append([entry], single=True)
        return log_pb2.LogResponse(id=ids[0])

    async def LogBatch(  # noqa: N802
        self, request: log_pb2.LogBatchRequest, context: grpc.aio.ServicerContext
    ) -> log_pb2.LogBatchResponse:
        """Stores many entries in one commit; returns their ids in request order."""
        limits.check_request_size(request.ByteSize())
        count = len(request.entries)
        if count == 0:
            raise InvalidArgumentError("entries is empty")
        if count > limits.MAX_BATCH_ENTRIES:
            raise InvalidArgumentError(
                f"entries has {count} entries; the limit is {limits.MAX_BATCH_ENTRIES} per call"
            )
        entries = [_checked(e, f"entries[{i}]") for i, e in enumerate(request.entries)]
        return log_pb2.LogBatchResponse(ids=await self._append(entries))

    async def _append(self, entries: list[log_pb2.LogEntry], single: bool = False) -> list[str]:
        try:
            return await self._store.append(entries, single=single)
        except sqlite3.Error as exc:
            # e.g. disk full or I/O error: nothing was stored, the client may retry later.
            raise UnavailableError(
                f"cannot store entries: {exc}; check free space and health of the data dir"
            ) from exc

    async def Query(  # noqa: N802
        self, request: log_pb2.QueryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[log_pb2.LogEntry]:
        """Streams matching entries (docs/log.md: order, limit, follow)."""
        # aclosing: when the client goes away, the store's generator (and its follower
        # registration) is closed right here, not later by the garbage collector.
        async with contextlib.aclosing(self._pages(request)) as pages:
            async for page in pages:
                for row in page:
                    yield row_to_entry(row)

    async def QueryPages(  # noqa: N802
        self, request: log_pb2.QueryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[log_pb2.LogEntryPage]:
        """Streams the same entries as Query, in the same order, many per message."""
        async with contextlib.aclosing(self._pages(request)) as pages:
            async for rows in pages:
                page = log_pb2.LogEntryPage()
                size = 0
                for row in rows:
                    entry = row_to_entry(row)
                    entry_size = entry.ByteSize()
                    if page.entries and size + entry_size > PAGE_BYTES:
                        # Stay far below every client's receive limit (gRPC's default is 4 MiB).
                        yield page
                        page = log_pb2.LogEntryPage()
                        size = 0
                    page.entries.append(entry)
                    size += entry_size + 6
                if page.entries:
                    yield page

    def _pages(self, request: log_pb2.QueryRequest) -> AsyncGenerator[list[Row], None]:
        return self._store.query(
            query_filter(request), request.limit, request.follow, self._ctx.stopping
        )

    async def GetVersion(  # noqa: N802
        self, request: log_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> log_pb2.VersionInfo:
        """The mvirt version serving this API."""
        return log_pb2.VersionInfo(version=package_version())
