"""The Logs view: the audit log of mvirt-log, followed as entries arrive."""

from __future__ import annotations

import threading
from typing import Any

import grpc
from textual import work
from textual.app import ComposeResult
from textual.widgets import Log

from mvirt.cli.output import safe
from mvirt.cli.tui.base import DaemonView
from mvirt.proto import log_pb2, log_pb2_grpc

BACKLOG = 200
"""Entries shown from before the view opened."""


def entry_line(entry: log_pb2.LogEntry) -> str:
    """One log entry as a line: time, level, component, message, related objects."""
    from mvirt.cli.logs import format_time  # noqa: PLC0415

    level = log_pb2.LogLevel.Name(entry.level)
    objects = f"  [{', '.join(entry.related_object_ids)}]" if entry.related_object_ids else ""
    return safe(
        f"{format_time(entry.timestamp_ns)}  {level:5}  {entry.component:8}  "
        f"{entry.message}{objects}"
    )


class LogsView(DaemonView):
    """The newest entries, then new ones as they are written (a follow stream)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stopping = threading.Event()
        self._stream: Any = None

    def compose_body(self) -> ComposeResult:
        yield Log(id="log", max_lines=5000)

    def on_mount(self) -> None:
        self.follow()

    def on_unmount(self) -> None:
        self._stopping.set()
        if self._stream is not None:
            self._stream.cancel()

    def reload(self) -> None:  # type: ignore[override]
        """Nothing to do: the follow stream keeps the view current."""

    @work(thread=True, group="follow")
    def follow(self) -> None:
        """Shows the backlog and follows; on a lost daemon says so and tries again."""
        while not self._stopping.is_set():
            if self.link.channel is None:
                self.from_thread(self.show_down, self.link.error or self.link.unreachable)
                return
            stub = log_pb2_grpc.LogServiceStub(self.link.channel)
            try:
                # A follow stream says nothing until an entry comes: ask first, so the view
                # knows at once whether the daemon is there.
                stub.GetVersion(log_pb2.GetVersionRequest())
                self.from_thread(self.show_up, None)
                self._stream = stub.Query(log_pb2.QueryRequest(limit=BACKLOG, follow=True))
                for entry in self._stream:
                    self.from_thread(self._append, entry_line(entry))
                # A follow stream that ends: the daemon is stopping.
                self.from_thread(self.show_down, self.link.unreachable)
            except grpc.RpcError as exc:
                if self._stopping.is_set():
                    return
                self.from_thread(self.show_down, self.link.describe(exc))
            self._stopping.wait(self.POLL_SECONDS)

    def show(self, data: Any) -> None:
        self.query_one(Log).clear()

    def _append(self, line: str) -> None:
        self.query_one(Log).write_line(line)
