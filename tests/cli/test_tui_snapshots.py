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
from textual.widgets import Log, TabbedContent
from textual.widgets._footer import FooterKey

from mvirt.cli.tui.app import MvirtApp
from mvirt.cli.tui.base import DaemonView
from mvirt.cli.tui.daemons import DaemonLink
from mvirt.cli.tui.system_view import SystemView
from tests.cli.fake_daemons import fake_daemons

SERVICES = {"vmm": "mvirt-vmm", "log": "mvirt-log", "zfs": "mvirt-zfs", "net": "mvirt-net"}
SIZE = (110, 30)


@pytest.fixture
def addresses(monkeypatch) -> Iterator[dict[str, str]]:
    # One answer per view: a poll redrawing a table while the picture is taken is a race.
    for view in (DaemonView, SystemView):
        monkeypatch.setattr(view, "POLL_SECONDS", 3600.0)
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
    app = MvirtApp(links)
    app.animation_level = "none"  # the tab underline slides: a screenshot mid-slide differs
    return app


def settled(tab: str, expect_up: bool = True):
    """Shows ``tab`` and waits until its view has answered (up or down)."""

    async def run_before(pilot: Pilot) -> None:
        first = pilot.app.query_one("#vms-view", DaemonView)  # the view shown at start
        deadline = time.monotonic() + 30
        while first.reachable is None:
            assert time.monotonic() < deadline, "the VMs view did not settle"
            await pilot.pause(0.05)
        pilot.app.query_one(TabbedContent).active = tab  # what the keys 1-5 do
        view = pilot.app.query_one(f"#{tab}-view", DaemonView)
        deadline = time.monotonic() + 30
        # The footer lists the keys of the focused widget; which one has the focus is not
        # what these pictures are about: none has, so the footer shows the app's keys.
        vm_keys = False

        def ready() -> bool:
            footer = {key.action for key in pilot.app.query(FooterKey)}
            return (
                view.reachable is expect_up
                and (tab != "logs" or _log_lines(pilot) > 0)
                and ("app.create_vm" in footer) is vm_keys
                and "quit" in footer
            )

        while not ready():
            pilot.app.set_focus(None)
            footer = sorted(k.action for k in pilot.app.query(FooterKey))
            assert time.monotonic() < deadline, (tab, view.reachable, footer, pilot.app.focused)
            await pilot.pause(0.05)
        await pilot.pause()

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
