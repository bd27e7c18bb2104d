"""The TUI application: a tab per view, the VM actions, and the modals they open.

Every gRPC call runs in a worker thread; results come back to the screen's thread with
``call_from_thread``. A daemon that is down only affects its own view.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, TabbedContent, TabPane

from mvirt.cli.output import safe
from mvirt.cli.tui.base import DaemonView
from mvirt.cli.tui.console_screen import ConsoleScreen
from mvirt.cli.tui.daemons import DaemonLink
from mvirt.cli.tui.logs_view import LogsView
from mvirt.cli.tui.modals import ConfirmModal, CreateVmModal, HelpModal, VmDetailModal
from mvirt.cli.tui.network_view import NetworkView
from mvirt.cli.tui.storage_view import StorageView
from mvirt.cli.tui.system_view import SystemView
from mvirt.cli.tui.vms_view import VmsView
from mvirt.proto import vmm_pb2, vmm_pb2_grpc

TABS = (
    ("vms", "VMs"),
    ("storage", "Storage"),
    ("network", "Network"),
    ("logs", "Logs"),
    ("system", "System"),
)


class ViewTabs(TabbedContent):
    """The views, a tab each; only a key or a click on a tab changes the one shown.

    TabbedContent also shows the pane of any widget that takes the focus, but it learns of
    the focus through messages that arrive later (TabPane.Focused, two hops behind). A view
    whose daemon answered took the focus just before a switch to another tab then took the
    screen back once its message arrived: the switch was lost, depending on load. Here the
    tab follows the keys and clicks only, and the focus follows the tab (take_focus).
    """

    def on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()  # not TabbedContent's own handler, which switches tabs


class MvirtApp(App[None]):
    """``mvirt`` with no command."""

    TITLE = "mvirt"
    AUTO_FOCUS = None  # the shown view takes the focus when its daemon answers
    CSS_PATH = Path(__file__).with_name("mvirt.tcss")
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("r", "reload", "Reload"),
        *(
            Binding(str(n), f"show_tab('{tab}')", title, show=False)
            for n, (tab, title) in enumerate(TABS, start=1)
        ),
    ]

    def __init__(self, links: dict[str, DaemonLink]) -> None:
        super().__init__()
        self.links = links

    def compose(self) -> ComposeResult:
        views = {
            "vms": VmsView(self.links["vmm"], id="vms-view"),
            "storage": StorageView(self.links["zfs"], id="storage-view"),
            "network": NetworkView(self.links["net"], id="network-view"),
            "logs": LogsView(self.links["log"], id="logs-view"),
            "system": SystemView(self.links["vmm"], id="system-view"),
        }
        with ViewTabs(initial="vms"):
            for tab, title in TABS:
                with TabPane(title, id=tab):
                    yield views[tab]
        yield Footer()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The keys of the view being shown apply, never those of a hidden one."""
        if event.pane.id == event.tabbed_content.active:  # not a late event of an older switch
            event.pane.query_one(DaemonView).take_focus()

    def on_unmount(self) -> None:
        for link in self.links.values():
            link.close()

    @property
    def vms_view(self) -> VmsView:
        """The VMs view."""
        return self.query_one(VmsView)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(f"#{tab}", TabPane).query_one(DaemonView).take_focus()

    def action_help(self) -> None:
        self.push_screen(HelpModal())

    def action_reload(self) -> None:
        active = self.query_one(TabbedContent).active
        view = self.query_one(f"#{active}", TabPane).query_one(DaemonView)
        view.reload()

    def _vmm(self) -> vmm_pb2_grpc.VmServiceStub | None:
        channel = self.links["vmm"].channel
        if channel is None or self.vms_view.reachable is not True:
            self.notify(self.links["vmm"].unreachable, severity="error")
            return None
        return vmm_pb2_grpc.VmServiceStub(channel)

    def _selected(self) -> vmm_pb2.Vm | None:
        vm = self.vms_view.selected()
        if vm is None:
            self.notify("no VM selected", severity="warning")
        return vm

    def action_create_vm(self) -> None:
        if self._vmm() is None:
            return

        def created(request: vmm_pb2.CreateVmRequest | None) -> None:
            if request is not None:
                self.call_vmm("create", lambda stub: stub.CreateVm(request))

        self.push_screen(CreateVmModal(), created)

    def action_start_stop(self) -> None:
        vm = self._selected()
        if vm is None:
            return
        if vm.state == vmm_pb2.VM_STATE_STOPPED:
            self.call_vmm("start", lambda stub: stub.StartVm(vmm_pb2.StartVmRequest(id=vm.id)))
        else:
            request = vmm_pb2.StopVmRequest(id=vm.id, timeout_seconds=30)
            self.call_vmm("stop", lambda stub: stub.StopVm(request, timeout=60))

    def action_kill_vm(self) -> None:
        vm = self._selected()
        if vm is not None:
            self.call_vmm("kill", lambda stub: stub.KillVm(vmm_pb2.KillVmRequest(id=vm.id)))

    def action_delete_vm(self) -> None:
        vm = self._selected()
        if vm is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                request = vmm_pb2.DeleteVmRequest(id=vm.id)
                self.call_vmm("delete", lambda stub: stub.DeleteVm(request))

        name = safe(vm.name or vm.id)
        self.push_screen(ConfirmModal(f"Delete VM {name}? This cannot be undone."), confirmed)

    def action_vm_detail(self) -> None:
        vm = self._selected()
        if vm is not None:
            self.push_screen(VmDetailModal(vm))

    def action_console(self) -> None:
        vm = self._selected()
        channel = self.links["vmm"].channel
        if vm is None or channel is None:
            return
        if vm.state != vmm_pb2.VM_STATE_RUNNING:
            self.notify(
                f"{safe(vm.name or vm.id)} is not running: start it with s", severity="warning"
            )
            return
        self.push_screen(ConsoleScreen(channel, vm.id, vm.name or vm.id))

    @work(thread=True, group="vmm-actions")
    def call_vmm(self, what: str, call: object) -> None:
        """Runs ``call(stub)`` and reports a failure; the view reloads either way."""
        stub = self._vmm_stub()
        if stub is None:
            return
        try:
            call(stub)  # type: ignore[operator]
        except grpc.RpcError as exc:
            message = f"{what} failed: {exc.code().name}: {safe(exc.details() or '')}"
            self.call_from_thread(self.notify, message, severity="error", timeout=10)
        self.call_from_thread(self.vms_view.reload)

    def _vmm_stub(self) -> vmm_pb2_grpc.VmServiceStub | None:
        channel = self.links["vmm"].channel
        return vmm_pb2_grpc.VmServiceStub(channel) if channel is not None else None
