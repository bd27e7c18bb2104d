"""The VMs view: every VM of mvirt-vmm, updated as WatchVms reports changes."""

from __future__ import annotations

import threading
from typing import Any

import grpc
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from mvirt.cli.output import safe
from mvirt.cli.tui.base import DaemonView
from mvirt.proto import vmm_pb2, vmm_pb2_grpc

COLUMNS = ("NAME", "STATE", "CPUS", "MEMORY", "ID")


class VmsView(DaemonView):
    """The VM table; the keys act on the VM under the cursor."""

    BINDINGS = [
        Binding("c", "app.create_vm", "Create"),
        Binding("s", "app.start_stop", "Start/stop"),
        Binding("k", "app.kill_vm", "Kill"),
        Binding("d", "app.delete_vm", "Delete"),
        Binding("i", "app.vm_detail", "Details"),
        Binding("enter", "app.vm_detail", "Details", show=False),
        Binding("t", "app.console", "Console"),
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vms: dict[str, vmm_pb2.Vm] = {}
        self._stopping = threading.Event()
        self._watch: Any = None

    def compose_body(self) -> ComposeResult:
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="vm-table")
        table.add_columns(*COLUMNS)
        yield table

    def on_mount(self) -> None:
        super().on_mount()
        self.watch_vms()

    def on_unmount(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.cancel()

    def fetch(self, channel: grpc.Channel) -> list[vmm_pb2.Vm]:
        stub = vmm_pb2_grpc.VmServiceStub(channel)
        return list(stub.ListVms(vmm_pb2.ListVmsRequest()).vms)

    def show(self, data: list[vmm_pb2.Vm]) -> None:
        table = self.query_one(DataTable)
        selected = self.selected_id()
        self.vms = {vm.id: vm for vm in data}
        table.clear()
        for vm in sorted(data, key=lambda v: v.name or v.id):
            state = vmm_pb2.VmState.Name(vm.state).removeprefix("VM_STATE_")
            table.add_row(
                safe(vm.name) if vm.HasField("name") else "-",
                state,
                str(vm.config.vcpus),
                f"{vm.config.memory_mb} MiB",
                vm.id,
                key=vm.id,
            )
        if selected in self.vms:
            table.move_cursor(row=table.get_row_index(selected))

    def selected_id(self) -> str | None:
        """The id of the VM under the cursor."""
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key

    def selected(self) -> vmm_pb2.Vm | None:
        """The VM under the cursor."""
        vm_id = self.selected_id()
        return self.vms.get(vm_id) if vm_id else None

    @work(thread=True, group="watch")
    def watch_vms(self) -> None:
        """Reloads on every WatchVms event; reconnects when the stream ends."""
        while not self._stopping.is_set():
            if self.link.channel is None:
                return
            stub = vmm_pb2_grpc.VmServiceStub(self.link.channel)
            self._watch = stub.WatchVms(vmm_pb2.WatchVmsRequest())
            try:
                for _event in self._watch:
                    self.from_thread(self.reload)
            except grpc.RpcError:
                pass
            # The daemon went away or restarted: the poll says so; try the stream again.
            self._stopping.wait(self.POLL_SECONDS)
