"""The System view: the host as mvirt-vmm sees it, and what VMs have allocated."""

from __future__ import annotations

import grpc
from textual.app import ComposeResult
from textual.widgets import DataTable

from mvirt.cli.output import safe
from mvirt.cli.tui.base import DaemonView
from mvirt.cli.vm import system_rows
from mvirt.proto import vmm_pb2, vmm_pb2_grpc


class SystemView(DaemonView):
    """Host facts as field/value rows."""

    POLL_SECONDS = 5.0

    def compose_body(self) -> ComposeResult:
        table: DataTable[str] = DataTable(show_cursor=False, id="system-table")
        table.add_columns("FIELD", "VALUE")
        yield table

    def fetch(self, channel: grpc.Channel) -> vmm_pb2.SystemInfo:
        stub = vmm_pb2_grpc.VmServiceStub(channel)
        return stub.GetSystemInfo(vmm_pb2.GetSystemInfoRequest())

    def show(self, data: vmm_pb2.SystemInfo) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for field, value in system_rows(data):
            table.add_row(field, safe(value))
