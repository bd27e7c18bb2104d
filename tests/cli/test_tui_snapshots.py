"""SVG snapshots of each TUI view (pytest-textual-snapshot) on a node of real daemons.

The node is made the same way every time, with fixed names: `mvirt create web --template
debian12 --disk-size 64M --network prod` (so a volume and a NIC), `db` beside it, a snapshot
of web's volume; the Logs view reads its own mvirt-log holding entries with fixed ids and
times. What the daemons choose afresh each run (VM ids, MACs, times, the pool's paths and
used bytes) is replaced, in the answers the views fetch, by fixed stand-ins of the same form,
so the pictures compare. The System view shows a fixed host from fake_host_vmm: the real
host's CPUs, disks and NICs differ from machine to machine.

After a deliberate change to a view: `.venv/bin/pytest tests/cli/test_tui_snapshots.py
--snapshot-update`, look at the SVGs in __snapshots__/ and commit them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from textual.widgets import DataTable, Log, TabbedContent

from mvirt.cli.main import cli
from mvirt.cli.tui.app import MvirtApp
from mvirt.cli.tui.base import DaemonView
from mvirt.cli.tui.daemons import DaemonLink
from mvirt.cli.tui.network_view import NetworkView
from mvirt.cli.tui.storage_view import StorageView
from mvirt.cli.tui.system_view import SystemView
from mvirt.cli.tui.vms_view import VmsView
from mvirt.proto import log_pb2, log_pb2_grpc, vmm_pb2, zfs_pb2
from tests.cli.boot_file import BOOT_FILE
from tests.cli.fake_host_vmm import fake_host_vmm
from tests.cli.real_node import RealNode, running_node
from tests.conftest import DaemonProcess

SERVICES = {"vmm": "mvirt-vmm", "log": "mvirt-log", "zfs": "mvirt-zfs", "net": "mvirt-net"}
SIZE = (110, 30)
T0 = 1_790_000_000  # 2026-09-21 14:13:20 UTC


def fixed_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def mask_vms(vms: list[vmm_pb2.Vm]) -> list[vmm_pb2.Vm]:
    for n, vm in enumerate(sorted(vms, key=lambda v: v.name), start=1):
        vm.id = fixed_id(n)
    return vms


def mask_storage(storage: Any) -> Any:
    for template in storage.templates:
        template.created_at = "2026-09-21T14:13:20Z"
    for volume in storage.volumes:
        volume.path = f"/srv/mvirt/volumes/{volume.name}/disk.img"
        volume.used_bytes = 1 << 20
    for job in storage.jobs:
        job.source = f"/srv/images/{Path(job.source).name}"
    return storage


def mask_network(networking: Any) -> Any:
    for n, nic in enumerate(sorted(networking.nics, key=lambda c: c.name), start=1):
        nic.mac_address = f"52:54:00:00:00:{n:02x}"
    return networking


MASKS: dict[type[DaemonView], Callable[[Any], Any]] = {
    VmsView: mask_vms,
    StorageView: mask_storage,
    NetworkView: mask_network,
}


@pytest.fixture
def fixed_views(monkeypatch) -> None:
    """Views that fetch once (a redraw while the picture is taken would be a race) and show
    the masked answer."""
    for view in (DaemonView, SystemView):
        monkeypatch.setattr(view, "POLL_SECONDS", 3600.0)
    for view, mask in MASKS.items():
        fetch = view.fetch

        def masked(self: Any, channel: grpc.Channel, fetch: Any = fetch, mask: Any = mask) -> Any:
            return mask(fetch(self, channel))

        monkeypatch.setattr(view, "fetch", masked)


def mvirt(node: RealNode, *args: str) -> None:
    result = CliRunner(env=node.env).invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def snapshot_node(zfs_service, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The node's addresses by daemon kind, with its fixed content (one node for every
    picture: they only read it)."""
    folder = tmp_path_factory.mktemp("snapshot-node")
    log = DaemonProcess("mvirt.log", folder / "snapshot-log")
    with running_node(folder) as node:
        try:
            yield fill(node, log.start())
        finally:
            log.kill()


def fill(node: RealNode, log: DaemonProcess) -> dict[str, str]:
    """Makes the node's content; the Logs view reads ``log``, with entries of fixed times."""
    mvirt(
        node, "create", "web", "--template", "debian12", "--disk-size", "64M", "--network", "prod"
    )
    mvirt(node, "start", "web")
    node.zfs.CreateSnapshot(
        zfs_pb2.CreateSnapshotRequest(volume_name="web-root", snapshot_name="before-upgrade")
    )
    mvirt(node, "create", "db", "--kernel", str(BOOT_FILE), "--memory", "2048", "--cpus", "2")
    with log.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        for n, (level, component, message) in enumerate(
            [
                (log_pb2.AUDIT, "vmm", "created VM web"),
                (log_pb2.INFO, "zfs", "cloned volume web-root from template debian12"),
                (log_pb2.WARN, "zfs", "pool is 85% full"),
            ]
        ):
            entry = log_pb2.LogEntry(
                timestamp_ns=(T0 + 61 * n) * 10**9,
                level=level,
                component=component,
                message=message,
                related_object_ids=[fixed_id(n + 1)],
            )
            stub.Log(log_pb2.LogRequest(entry=entry))
    return {
        "vmm": node.vmm_endpoint,
        "log": log.endpoint,
        "zfs": node.zfs_daemon.endpoint,
        "net": node.net_daemon.relay.endpoint,
    }


def app_for(addresses: dict[str, str], down: tuple[str, ...] = ()) -> MvirtApp:
    """The TUI on ``addresses``; the addresses it shows are fixed names so pictures compare."""
    links = {}
    for n, (kind, service) in enumerate(SERVICES.items(), start=1):
        shown = f"{kind}.node.test:5005{n}"
        address = "127.0.0.1:9" if kind in down else addresses[kind]
        links[kind] = DaemonLink(service, shown, grpc.insecure_channel(address))
    app = MvirtApp(links)
    app.animation_level = "none"  # the tab underline slides: a picture mid-slide differs
    return app


ROWS = {"vms": ("#vm-table", 2), "storage": ("#volumes", 1), "network": ("#nics", 1)}


def settled(key: str, tab: str, expect_up: bool = True) -> Callable[[Pilot], Any]:
    """Presses ``key`` (as a person switches views) and waits until the view has answered
    (up or down), shows all its rows and has the focus it keeps."""

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        view = app.query_one(f"#{tab}-view", DaemonView)
        await pilot.press(key)
        deadline = time.monotonic() + 60

        def ready() -> bool:
            if view.reachable is not expect_up or app.query_one(TabbedContent).active != tab:
                return False
            if not expect_up:
                return app.focused is None
            if tab in ROWS:
                selector, rows = ROWS[tab]
                if app.query_one(selector, DataTable).row_count != rows:
                    return False
            if tab == "logs" and app.query_one("#log", Log).line_count < 3:
                return False
            return app.focused is not None and view in app.focused.ancestors

        while not ready():
            assert time.monotonic() < deadline, (tab, view.reachable, app.focused)
            await pilot.pause(0.05)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    ("key", "tab"), [("1", "vms"), ("2", "storage"), ("3", "network"), ("4", "logs")]
)
def test_view_snapshot(snap_compare, fixed_views, snapshot_node, key, tab):
    app = app_for(snapshot_node)
    assert snap_compare(app, terminal_size=SIZE, run_before=settled(key, tab))


def test_system_view_snapshot(snap_compare, fixed_views):
    with fake_host_vmm() as address:
        addresses = dict.fromkeys(SERVICES, "127.0.0.1:9") | {"vmm": address}
        app = app_for(addresses)
        assert snap_compare(app, terminal_size=SIZE, run_before=settled("5", "system"))


def test_view_of_a_daemon_that_is_down_snapshot(snap_compare, fixed_views):
    app = app_for({}, down=tuple(SERVICES))
    run_before = settled("1", "vms", expect_up=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_snapshot(snap_compare, fixed_views):
    async def run_before(pilot: Pilot) -> None:
        await settled("1", "vms", expect_up=False)(pilot)
        await pilot.press("question_mark")
        deadline = time.monotonic() + 30
        while pilot.app.screen is pilot.app.screen_stack[0]:
            assert time.monotonic() < deadline, "no help"
            await pilot.pause(0.05)
        await pilot.pause()

    app = app_for({}, down=tuple(SERVICES))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
