"""The TUI's links to the daemons: one channel each, opened once at start with the same
endpoint, TLS and deadline settings as every CLI command."""

from __future__ import annotations

from dataclasses import dataclass

import click
import grpc

from mvirt.cli.output import safe
from mvirt.cli.settings import ENDPOINTS

KINDS = {"vmm": "--server", "log": "--log-server", "zfs": "--zfs-server", "net": "--net-server"}
"""The daemons the TUI shows, by the option that names each one's address."""


@dataclass
class DaemonLink:
    """A daemon's address and channel; no channel when it could not be opened (``error``)."""

    service: str
    address: str
    channel: grpc.Channel | None = None
    error: str | None = None

    @property
    def unreachable(self) -> str:
        """What a view says while the daemon does not answer."""
        return f"{self.service} not reachable at {self.address}"

    def describe(self, exc: grpc.RpcError) -> str:
        """What a view says about a failed call."""
        code = exc.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return self.unreachable
        return f"{self.service}: {code.name}: {safe(exc.details() or '')}"

    def close(self) -> None:
        """Closes the channel (ending its streams)."""
        if self.channel is not None:
            self.channel.close()


def link_daemons() -> dict[str, DaemonLink]:
    """A link per daemon, from the options of this invocation (needs the click context)."""
    from mvirt.cli.options import resolve_endpoint  # noqa: PLC0415
    from mvirt.cli.rpc import open_channel  # noqa: PLC0415

    links = {}
    for kind, flag in KINDS.items():
        service = ENDPOINTS[flag].service
        try:
            address, channel = open_channel(None, flag, service)
            links[kind] = DaemonLink(service, address, channel)
        except click.ClickException as exc:
            links[kind] = DaemonLink(service, resolve_endpoint(None, flag), error=exc.message)
    return links
