"""``mvirt logs``: query and follow the audit log (mvirt-log)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape

from mvirt.cli.output import console, output_option, print_json_line, print_table
from mvirt.cli.rpc import connect, endpoint_option
from mvirt.log.retention import parse_duration
from mvirt.proto import log_pb2, log_pb2_grpc

LOG_SERVER_DEFAULT = "http://[::1]:50052"
COLUMNS = ("TIME", "LEVEL", "COMPONENT", "MESSAGE", "OBJECTS")


def parse_since(value: str, now_ns: int) -> int:
    """Nanoseconds since the epoch for ``--since``: a duration ago (``10m``, ``2h``, ``7d``)
    or an ISO 8601 time (``2026-01-31T12:00``; without a zone it is local time)."""
    try:
        return now_ns - int(parse_duration(value) * 1_000_000_000)
    except ValueError:
        pass
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
    return int(when.timestamp() * 1_000_000_000)


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
    with connect(server, "--log-server", "mvirt-log") as channel:
        stream = log_pb2_grpc.LogServiceStub(channel).Query(request)
        try:
            _show(stream, fmt, follow)
        except KeyboardInterrupt:
            stream.cancel()


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
