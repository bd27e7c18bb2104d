"""The Network view: networks and their NICs (mvirt-net)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from textual.app import ComposeResult
from textual.widgets import DataTable, Label

from mvirt.cli.output import safe
from mvirt.cli.tui.base import DaemonView
from mvirt.proto import net_pb2, net_pb2_grpc


@dataclass
class Networking:
    """What the view shows."""

    networks: list[net_pb2.Network]
    nics: list[net_pb2.Nic]


class NetworkView(DaemonView):
    """Two tables: networks, NICs."""

    def compose_body(self) -> ComposeResult:
        yield Label("Networks", classes="section")
        networks: DataTable[str] = DataTable(id="networks", cursor_type="row")
        networks.add_columns("NAME", "IPV4", "IPV6", "NICS", "PUBLIC")
        yield networks
        yield Label("NICs", classes="section")
        nics: DataTable[str] = DataTable(id="nics", show_cursor=False)
        nics.add_columns("NAME", "NETWORK", "MAC", "IPV4", "IPV6", "STATE")
        yield nics

    def fetch(self, channel: grpc.Channel) -> Networking:
        stub = net_pb2_grpc.NetServiceStub(channel)
        return Networking(
            list(stub.ListNetworks(net_pb2.ListNetworksRequest()).networks),
            list(stub.ListNics(net_pb2.ListNicsRequest()).nics),
        )

    def show(self, data: Networking) -> None:
        names = {n.id: n.name for n in data.networks}
        networks = self.query_one("#networks", DataTable)
        networks.clear()
        for n in data.networks:
            networks.add_row(
                safe(n.name),
                safe(n.ipv4_subnet) if n.ipv4_enabled else "-",
                safe(n.ipv6_prefix) if n.ipv6_enabled else "-",
                str(n.nic_count),
                "yes" if n.is_public else "no",
            )
        nics = self.query_one("#nics", DataTable)
        nics.clear()
        for nic in data.nics:
            state = net_pb2.NicState.Name(nic.state).removeprefix("NIC_STATE_")
            nics.add_row(
                safe(nic.name),
                safe(names.get(nic.network_id, nic.network_id)),
                safe(nic.mac_address),
                safe(nic.ipv4_address) or "-",
                safe(nic.ipv6_address) or "-",
                state,
            )
