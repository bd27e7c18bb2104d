"""The TUI, headless with textual's pilot, against a real mvirt-vmm (and mvirt-log): create a
VM from the modal, a console on a real QEMU guest, a daemon that stops; and the real `mvirt`
in tmux as a person would use it."""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import click
import pytest
from textual.widgets import DataTable, Input, Log, TabbedContent

from mvirt.cli.main import cli
from mvirt.cli.tui.app import MvirtApp
from mvirt.cli.tui.console_screen import ConsoleScreen, printable
from mvirt.cli.tui.daemons import link_daemons
from mvirt.cli.tui.logs_view import LogsView
from mvirt.cli.tui.modals import ConfirmModal, CreateVmModal
from mvirt.cli.tui.system_view import SystemView
from mvirt.cli.tui.vms_view import VmsView
from mvirt.proto import vmm_pb2
from tests.conftest import start_log_daemon  # noqa: F401 (fixture)
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture)
from tests.vmm.guest import PROMPT, READY, find_kernel, make_initramfs


@pytest.fixture
def vmm_server(start_vmm):  # noqa: F811
    return start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))


def links(monkeypatch, **addresses: str):
    """The TUI's links, resolved as `mvirt` resolves them (from MVIRT_* variables)."""
    names = {
        "vmm": "MVIRT_SERVER",
        "log": "MVIRT_LOG_SERVER",
        "zfs": "MVIRT_ZFS_SERVER",
        "net": "MVIRT_NET_SERVER",
    }
    for kind, env in names.items():
        monkeypatch.setenv(env, addresses.get(kind, "127.0.0.1:9"))
    with click.Context(cli):
        return link_daemons()


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """A test written as a coroutine, run to the end in its own event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {condition.__doc__ or condition}")
        await pilot.pause(0.05)


def vm_names(app: MvirtApp) -> list[str]:
    table = app.query_one("#vm-table", DataTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def vm_states(app: MvirtApp) -> dict[str, str]:
    table = app.query_one("#vm-table", DataTable)
    return {
        str(row[0]): str(row[1]) for row in (table.get_row_at(i) for i in range(table.row_count))
    }


@pytest.fixture
def boot_file(tmp_path):
    """A file the fake cloud-hypervisor boots, inside the daemon's image roots (/tmp)."""
    path = tmp_path / "kernel"
    shutil.copyfile(FAKE_CH, path)
    return path


def status(app: MvirtApp, view: str) -> str:
    return str(app.query_one(f"#{view} .status").render())


@run_async
async def test_create_a_vm_from_the_modal_start_it_and_delete_it(
    vmm_server, monkeypatch, boot_file
):
    app = MvirtApp(links(monkeypatch, vmm=vmm_server.daemon.endpoint))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.query_one(VmsView).reachable is True)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CreateVmModal))
        await pilot.press(*"tuivm")
        app.screen.query_one("#kernel", Input).value = str(boot_file)
        app.screen.query_one("#memory", Input).value = "64"
        await pilot.click("#create")
        await wait_until(pilot, lambda: "tuivm" in vm_names(app))
        listed = vmm_server.stub.ListVms(vmm_pb2.ListVmsRequest()).vms
        assert [(vm.name, vm.config.memory_mb) for vm in listed] == [("tuivm", 64)]

        # Started elsewhere: WatchVms brings the change without a key press.
        vmm_server.stub.StartVm(vmm_pb2.StartVmRequest(id=listed[0].id))
        await wait_until(pilot, lambda: vm_states(app).get("tuivm") == "RUNNING")
        await pilot.press("k")
        await wait_until(pilot, lambda: vm_states(app).get("tuivm") == "STOPPED")

        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("n")  # the default answer keeps it
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_until(pilot, lambda: vm_names(app) == [])
    assert list(vmm_server.stub.ListVms(vmm_pb2.ListVmsRequest()).vms) == []


@run_async
async def test_a_bad_form_says_which_field(vmm_server, monkeypatch):
    app = MvirtApp(links(monkeypatch, vmm=vmm_server.daemon.endpoint))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.query_one(VmsView).reachable is True)
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CreateVmModal))
        app.screen.query_one("#memory", Input).value = "lots"
        await pilot.click("#create")
        await pilot.pause(0.1)
        assert "memory must be a whole number" in str(app.screen.query_one("#problem").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, CreateVmModal))
    assert list(vmm_server.stub.ListVms(vmm_pb2.ListVmsRequest()).vms) == []


@run_async
async def test_a_stopped_daemon_is_named_in_its_view_and_the_others_keep_working(
    vmm_server,
    start_log_daemon,  # noqa: F811
    monkeypatch,
):
    log = start_log_daemon()
    address = vmm_server.daemon.endpoint
    app = MvirtApp(links(monkeypatch, vmm=address, log=log.endpoint))
    async with app.run_test(size=(120, 40)) as pilot:
        logs = app.query_one(LogsView)
        await wait_until(pilot, lambda: app.query_one(VmsView).reachable is True)
        await wait_until(pilot, lambda: logs.reachable is True)
        assert vmm_server.daemon.terminate() == 0
        await wait_until(pilot, lambda: app.query_one(VmsView).reachable is False)
        await wait_until(pilot, lambda: app.query_one(SystemView).reachable is False)
        assert status(app, "vms-view") == f"mvirt-vmm not reachable at {address}"
        assert status(app, "system-view") == f"mvirt-vmm not reachable at {address}"
        assert not app.query_one("#vm-table").display
        assert status(app, "storage-view") == "mvirt-zfs not reachable at 127.0.0.1:9"
        assert logs.reachable is True and status(app, "logs-view").startswith("mvirt-log at")
        await pilot.press("c")  # the VM keys do nothing while mvirt-vmm is down
        assert not isinstance(app.screen, CreateVmModal)

        vmm_server.daemon.start()  # back at the same address: the view and its keys return
        await wait_until(pilot, lambda: app.query_one(VmsView).reachable is True)
        assert status(app, "vms-view") == f"mvirt-vmm at {address}"
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, CreateVmModal))


@run_async
async def test_a_view_that_answers_as_the_user_switches_away_does_not_take_the_screen_back(
    vmm_server, monkeypatch
):
    app = MvirtApp(links(monkeypatch, vmm=vmm_server.daemon.endpoint))
    async with app.run_test(size=(120, 40)) as pilot:
        vms = app.query_one(VmsView)
        await wait_until(pilot, lambda: vms.reachable is True)
        app.set_focus(None)
        await pilot.pause()
        # The ordering that lost under load: the VMs view's answer (its poll, on the screen's
        # thread) and the key 2 are handled before the focus the view took has been
        # announced to its tab.
        assert vms.link.channel is not None
        vms.show_up(vms.fetch(vms.link.channel))
        app.action_show_tab("storage")
        for _ in range(5):  # every message those two left behind
            await pilot.pause()
        assert app.query_one(TabbedContent).active == "storage"
        assert app.query_one("#storage").display and not app.query_one("#vms").display
        assert app.focused is None  # mvirt-zfs is down: no keys of a hidden view apply
        await pilot.press("c")
        assert not isinstance(app.screen, CreateVmModal)
        await pilot.press("1")  # and back: the VMs view and its keys
        await wait_until(pilot, lambda: app.focused is app.query_one("#vm-table"))
        assert app.query_one(TabbedContent).active == "vms"


def test_console_output_is_text_without_terminal_control():
    assert printable("\x1b[1;32mok\x1b[0m\r\nline\x1b]0;title\x07\x07!") == "ok\nline\\x07!"


@pytest.fixture(scope="module")
def kernel_guest(tmp_path_factory):
    kernel = find_kernel()
    if kernel is None:
        pytest.skip("no kernel: run `make kernel` (build/bzImage) or set MVIRT_TEST_KERNEL")
    return kernel, make_initramfs(tmp_path_factory.mktemp("guest") / "initramfs.cpio")


@pytest.mark.slow
@run_async
async def test_console_pane_shows_a_real_guest_and_takes_keys(
    start_vmm,  # noqa: F811
    kernel_guest,
    monkeypatch,
):
    kernel, initramfs = kernel_guest
    vmm = start_vmm()  # QEMU under TCG
    config = vmm_pb2.VmConfig(
        vcpus=1,
        memory_mb=256,
        kernel=str(kernel),
        initramfs=str(initramfs),
        cmdline="console=ttyS0 panic=-1",
    )
    vm = vmm.stub.CreateVm(vmm_pb2.CreateVmRequest(name="guest", config=config))
    app = MvirtApp(links(monkeypatch, vmm=vmm.daemon.endpoint))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: vm_names(app) == ["guest"])
        await pilot.press("t")  # not running yet: a notice, no console
        assert not isinstance(app.screen, ConsoleScreen)
        await pilot.press("s")
        await wait_until(pilot, lambda: vm_states(app).get("guest") == "RUNNING")
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen))
        screen = app.screen
        assert "Ctrl+a t leaves" in str(screen.query_one("#console-title").render())

        def output() -> str:
            return "\n".join(str(line) for line in screen.query_one(Log).lines)

        await wait_until(pilot, lambda: READY in output() and PROMPT in output(), timeout=180)
        await pilot.press(*"echo sum=$((6*7))", "enter")
        await wait_until(pilot, lambda: "sum=42" in output(), timeout=60)
        await pilot.press("ctrl+a", "t")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConsoleScreen))
    vmm.stub.KillVm(vmm_pb2.KillVmRequest(id=vm.id))


def tmux(socket: str, *args: str) -> str:
    result = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, check=False, timeout=30
    )
    return result.stdout.decode(errors="replace")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_real_mvirt_in_tmux(vmm_server, boot_file):
    vm = vmm_server.stub.CreateVm(
        vmm_pb2.CreateVmRequest(
            name="tmuxvm", config=vmm_pb2.VmConfig(vcpus=1, memory_mb=64, kernel=str(boot_file))
        )
    )
    socket = f"mvirt-test-{uuid.uuid4().hex[:8]}"
    command = (
        f"MVIRT_SERVER={vmm_server.daemon.endpoint} MVIRT_LOG_SERVER=127.0.0.1:9 "
        f"{sys.executable} -m mvirt.cli; echo mvirt-exited-$?; sleep 30"
    )
    tmux(socket, "new-session", "-d", "-s", "t", "-x", "120", "-y", "30", command)

    def screen_shows(text: str, timeout: float = 30.0, present: bool = True) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = tmux(socket, "capture-pane", "-p", "-t", "t")
            if (text in screen) == present or time.monotonic() > deadline:
                assert (text in screen) == present, screen
                return screen
            time.sleep(0.1)

    try:
        screen_shows("c Create")
        assert "STOPPED" in screen_shows("tmuxvm")
        tmux(socket, "send-keys", "-t", "t", "s")
        screen_shows("RUNNING")
        running = vmm_server.stub.GetVm(vmm_pb2.GetVmRequest(id=vm.id)).state
        assert running == vmm_pb2.VM_STATE_RUNNING
        tmux(socket, "send-keys", "-t", "t", "?")
        screen_shows("console of the VM (Ctrl+a t leaves)")
        tmux(socket, "send-keys", "-t", "t", "Escape")
        screen_shows("console of the VM (Ctrl+a t leaves)", present=False)
        tmux(socket, "send-keys", "-t", "t", "4")
        screen_shows("mvirt-log not reachable at 127.0.0.1:9")
        tmux(socket, "send-keys", "-t", "t", "q")
        screen_shows("mvirt-exited-0")
    finally:
        tmux(socket, "kill-server")
