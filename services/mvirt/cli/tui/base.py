"""What every daemon view shares: a status line that says when its daemon is not reachable,
a body hidden meanwhile, and fetching in a thread so a slow daemon never blocks the screen.

A view polls its daemon every :attr:`DaemonView.POLL_SECONDS`; views with a stream (VMs with
WatchVms, Logs with follow) also update as events arrive.
"""

from __future__ import annotations

from typing import Any

import grpc
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TabbedContent

from mvirt.cli.tui.daemons import DaemonLink


class DaemonView(Vertical):
    """A view of one daemon. Subclasses compose :meth:`compose_body`, fetch data in
    :meth:`fetch` (in a thread) and show it in :meth:`show` (on the screen's thread)."""

    POLL_SECONDS = 2.0

    def __init__(self, link: DaemonLink, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.link = link
        self.reachable: bool | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"connecting to {self.link.service} at {self.link.address}", classes="status")
        yield from self.compose_body()

    def compose_body(self) -> ComposeResult:
        """The widgets that show the daemon's data."""
        yield from ()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(self.POLL_SECONDS, self.reload)

    def fetch(self, channel: grpc.Channel) -> Any:
        """The data to show (blocking gRPC calls; runs in a thread)."""
        raise NotImplementedError

    def show(self, data: Any) -> None:
        """Shows what :meth:`fetch` returned."""
        raise NotImplementedError

    @work(thread=True, exclusive=True, group="fetch")
    def reload(self) -> None:
        """Fetches and shows the daemon's data, or says why it cannot."""
        if self.link.channel is None:
            self.from_thread(self.show_down, self.link.error or self.link.unreachable)
            return
        try:
            data = self.fetch(self.link.channel)
        except grpc.RpcError as exc:
            self.from_thread(self.show_down, self.link.describe(exc))
            return
        self.from_thread(self.show_up, data)

    def from_thread(self, callback: Any, *args: Any) -> None:
        """Runs ``callback`` on the screen's thread (nothing once the app has ended)."""
        try:
            self.app.call_from_thread(callback, *args)
        except RuntimeError:
            pass  # the app is shutting down

    def show_down(self, why: str) -> None:
        """Says ``why`` in the status line and hides the body; the body gives up the focus
        (so the footer lists only the keys that still work)."""
        self.reachable = False
        self.add_class("down")
        self.query_one(".status", Static).update(why)
        focused = self.app.focused
        if focused is not None and self in focused.ancestors:
            self.app.set_focus(None)

    def show_up(self, data: Any) -> None:
        """Shows ``data`` and the body; the body takes the focus back if nothing has it."""
        if self.reachable is not True:
            self.query_one(".status", Static).update(f"{self.link.service} at {self.link.address}")
        self.reachable = True
        self.remove_class("down")
        self.show(data)
        if self.app.focused is None and self.in_active_tab():
            self.take_focus()

    def take_focus(self) -> None:
        """Focuses the body (its keys apply), or nothing while the daemon is down."""
        if self.reachable:
            self.app.set_focus(self.query("DataTable, Log").first())  # now, not deferred
        else:
            self.app.set_focus(None)

    def in_active_tab(self) -> bool:
        """Whether this view is on the tab being shown."""
        for ancestor in self.ancestors:
            if isinstance(ancestor, TabbedContent):
                return ancestor.active == (self.parent.id if self.parent else None)
        return True
