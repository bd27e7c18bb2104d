"""``mvirt logs``: query and follow the audit log (mvirt-log).

Entries are read with ``QueryPages`` (many entries per message). The stream is consumed on a
worker thread and handed to the main thread through a queue that the main thread polls.
While the stream is open, Ctrl-C only sets a flag that the main thread checks between polls;
then the stream is cancelled and the worker joined before the command returns.

Why: iterating a gRPC stream on the main thread and letting Ctrl-C raise KeyboardInterrupt
means the exception can land at any bytecode inside gRPC's iterator, including between the
release and re-acquisition of the call's lock. The lock is then left in the wrong state
("cannot release un-acquired lock", or held for good), and cancelling the call or closing the
channel waits for it forever: the intermittent hang of ``--follow`` after SIGINT.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import click
import grpc
from rich.markup import escape

from mvirt.cli.output import console, output_option, print_json_line, print_table
from mvirt.cli.rpc import connect, endpoint_option
from mvirt.log.retention import parse_duration
from mvirt.proto import log_pb2, log_pb2_grpc

INT64_MAX = (1 << 63) - 1
LOG_SERVER_DEFAULT = "http://[::1]:50052"
COLUMNS = ("TIME", "LEVEL", "COMPONENT", "MESSAGE", "OBJECTS")


def parse_since(value: str, now_ns: int) -> int:
    """Nanoseconds since the epoch for ``--since``: a duration ago (``10m``, ``2h``, ``7d``)
    or an ISO 8601 time (``2026-01-31T12:00``; without a zone it is local time)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        pass
    else:
        # Any duration is fine: one longer than the time since 1970 means "everything".
        return _clamp(now_ns - int(seconds) * 1_000_000_000)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30s, 10m, 2h, 7d, 1w) nor an ISO 8601 time "
            "(2026-01-31T12:00:00)",
            param_hint="--since",
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return _clamp(int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000)


def _clamp(timestamp_ns: int) -> int:
    """``timestamp_ns`` within what the API accepts (0 to the largest int64)."""
    return min(max(timestamp_ns, 0), INT64_MAX)


def format_time(timestamp_ns: int) -> str:
    """UTC time with milliseconds, e.g. ``2026-01-31 12:00:00.123Z``."""
    when = datetime.fromtimestamp(timestamp_ns / 1e9, UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def entry_json(entry: log_pb2.LogEntry) -> dict[str, Any]:
    """The JSON form of an entry (``-o json``)."""
    return {
        "id": entry.id,
        "timestamp_ns": entry.timestamp_ns,
        "time": format_time(entry.timestamp_ns),
        "level": log_pb2.LogLevel.Name(entry.level),
        "component": entry.component,
        "message": entry.message,
        "related_object_ids": list(entry.related_object_ids),
    }


def entry_row(entry: log_pb2.LogEntry) -> tuple[str, str, str, str, str]:
    """The table cells of an entry."""
    return (
        format_time(entry.timestamp_ns),
        log_pb2.LogLevel.Name(entry.level),
        entry.component,
        escape(entry.message),
        ", ".join(entry.related_object_ids),
    )


@click.command()
@click.option("--object", "object_id", metavar="ID", help="only entries related to this object")
@click.option("--component", metavar="C", help="only entries of this component (vmm, zfs, ...)")
@click.option("--since", metavar="T", help="only entries at or after T: 10m, 2h, 7d or ISO 8601")
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(0, 2**32 - 1),
    default=100,
    show_default=True,
    help="show the newest N matching entries (0: all)",
)
@click.option("-f", "--follow", is_flag=True, help="keep running and show new entries")
@output_option()
@endpoint_option("--log-server", "MVIRT_LOG_SERVER", LOG_SERVER_DEFAULT, "mvirt-log")
def logs(
    *,
    object_id: str | None,
    component: str | None,
    since: str | None,
    limit: int,
    follow: bool,
    fmt: str,
    server: str | None,
) -> None:
    """Show audit log entries, oldest first (the newest --limit of them)."""
    request = log_pb2.QueryRequest(limit=limit, follow=follow)
    if object_id is not None:
        request.object_id = object_id
    if component is not None:
        request.component = component
    if since is not None:
        request.start_time_ns = parse_since(since, _now_ns())
    with CtrlC() as ctrl_c, connect(server, "--log-server", "mvirt-log") as channel:
        reader = StreamReader(log_pb2_grpc.LogServiceStub(channel).QueryPages(request))
        try:
            _show(reader.entries(ctrl_c), fmt, follow)
        finally:
            reader.stop()


class CtrlC:
    """While active (on the main thread), SIGINT sets :attr:`pressed` instead of raising
    KeyboardInterrupt at whatever bytecode runs at that moment."""

    def __init__(self) -> None:
        self.pressed = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: object) -> None:
        # Only an attribute store: a handler that took a lock could deadlock against the
        # code it interrupted.
        self.pressed = True

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: the handler was not set from Python; the default is the closest match.
            signal.signal(signal.SIGINT, self._previous or signal.SIG_DFL)


class StreamReader:
    """Reads a ``QueryPages`` stream on a worker thread; :meth:`entries` yields its entries on
    the calling thread and stays responsive to signals while it waits."""

    _POLL_S = 0.1
    _END = object()

    def __init__(self, pages: Iterable[log_pb2.LogEntryPage]) -> None:
        self._pages = pages
        # Bounded, so a slow terminal slows the stream down instead of filling memory.
        self._queue: queue.Queue[object] = queue.Queue(maxsize=64)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name="mvirt-logs-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for page in self._pages:
                if not self._put(page):
                    return
        except grpc.RpcError as exc:
            if not self._stopped.is_set():
                self._put(exc)
            return
        self._put(self._END)

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=self._POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def entries(self, ctrl_c: CtrlC) -> Iterator[log_pb2.LogEntry]:
        """The stream's entries in order until it ends or Ctrl-C is pressed; raises the
        stream's gRPC error if it failed."""
        while not ctrl_c.pressed:
            try:
                # A short timeout: Ctrl-C is noticed within it.
                item = self._queue.get(timeout=self._POLL_S)
            except queue.Empty:
                continue
            if item is self._END:
                return
            if isinstance(item, grpc.RpcError):
                raise item
            assert isinstance(item, log_pb2.LogEntryPage)
            for entry in item.entries:
                if ctrl_c.pressed:
                    return
                yield entry

    def stop(self) -> None:
        """Cancels the stream and waits for the worker thread to finish."""
        self._stopped.set()
        cancel = getattr(self._pages, "cancel", None)
        if cancel is not None:
            cancel()
        self._thread.join()


def _now_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000_000)


def _show(stream: Iterator[log_pb2.LogEntry], fmt: str, follow: bool) -> None:
    if fmt == "json":
        for entry in stream:
            print_json_line(entry_json(entry))
    elif follow:
        # A table cannot grow on screen: print aligned lines as entries arrive.
        out = console()
        for entry in stream:
            time_, level, comp, message, objects = entry_row(entry)
            suffix = f"  [dim]{escape(objects)}[/dim]" if objects else ""
            out.print(f"{time_}  {level:5}  {escape(comp):8}  {message}{suffix}")
    else:
        print_table(COLUMNS, (entry_row(e) for e in stream))
