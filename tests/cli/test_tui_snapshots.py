"""SVG snapshots of each TUI view (pytest-textual-snapshot), on fixed data from in-test
servers (tests/cli/fake_daemons.py), and of a view whose daemon is down.

After a deliberate change to a view: `pytest tests/cli/test_tui_snapshots.py
--snapshot-update`, look at the SVGs in __snapshots__/ and commit them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from textual.pilot import Pilot
from textual.widgets import Log

from mvirt.cli.tui.app import MvirtApp
from mvirt.cli.tui.base import DaemonView
from mvirt.cli.tui.daemons import DaemonLink
from tests.cli.fake_daemons import fake_daemons

SERVICES = {"vmm": "mvirt-vmm", "log": "mvirt-log", "zfs": "mvirt-zfs", "net": "mvirt-net"}
SIZE = (110, 30)


@pytest.fixture
def addresses() -> Iterator[dict[str, str]]:
    server, addresses = fake_daemons()
    yield addresses
    server.stop(None)


def app_for(addresses: dict[str, str], down: tuple[str, ...] = ()) -> MvirtApp:
    """The TUI on the fakes; the addresses it shows are fixed names so screenshots compare."""
    links = {}
    for kind, service in SERVICES.items():
        shown = f"{kind}.node.test:5005{list(SERVICES).index(kind) + 1}"
        if kind in down:
            links[kind] = DaemonLink(service, shown, grpc.insecure_channel("127.0.0.1:9"))
        else:
            links[kind] = DaemonLink(service, shown, grpc.insecure_channel(addresses[kind]))
    return MvirtApp(links)


def settled(tab: str, expect_up: bool = True):
    """Shows ``tab`` and waits until its view has answered (up or down)."""

    async def run_before(pilot: Pilot) -> None:
        await pilot.press(str(["vms", "storage", "network", "logs", "system"].index(tab) + 1))
        view = pilot.app.query_one(f"#{tab}-view", DaemonView)
        deadline = time.monotonic() + 30
        while view.reachable is not expect_up or (tab == "logs" and not _log_lines(pilot)):
            assert time.monotonic() < deadline, f"{tab} did not settle"
            await pilot.pause(0.05)
        await pilot.pause(0.2)

    return run_before


def _log_lines(pilot: Pilot) -> int:
    return pilot.app.query_one("#log", Log).line_count


@pytest.mark.parametrize("tab", ["vms", "storage", "network", "logs", "system"])
def test_view_snapshot(snap_compare, addresses, tab):
    assert snap_compare(app_for(addresses), terminal_size=SIZE, run_before=settled(tab))


def test_view_of_a_daemon_that_is_down_snapshot(snap_compare, addresses):
    app = app_for(addresses, down=("vmm",))
    assert snap_compare(app, terminal_size=SIZE, run_before=settled("vms", expect_up=False))


def test_help_snapshot(snap_compare, addresses):
    async def run_before(pilot: Pilot) -> None:
        await settled("vms")(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(app_for(addresses), terminal_size=SIZE, run_before=run_before)
