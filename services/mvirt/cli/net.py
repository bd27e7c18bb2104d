"""``mvirt network`` and ``mvirt nic`` commands (mvirt-net): create, list, get, update,
delete. Networks and NICs are named by name or id everywhere."""

from __future__ import annotations

from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mvirt.cli.output import Decorator, console, output_option, print_json_line, print_table
from mvirt.cli.rpc import connect, endpoint_option
from mvirt.proto import net_pb2, net_pb2_grpc

NET_SERVER_DEFAULT = "http://[::1]:50054"
FLAG = "--net-server"
SERVICE = "mvirt-net"


def server_option() -> Decorator:
    """``--net-server`` for mvirt-net (env MVIRT_NET_SERVER)."""
    return endpoint_option(FLAG, "MVIRT_NET_SERVER", NET_SERVER_DEFAULT, SERVICE)


def _print_wide(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table whose cells are never shortened: ids, TAPs, MACs and addresses are what people
    copy, so the table is as wide as its content even when the terminal is narrower."""
    out = console()
    needed = sum(max([len(c), *(len(r[i]) for r in rows)]) + 2 for i, c in enumerate(columns))
    if needed > out.width:
        out = Console(highlight=False, soft_wrap=False, width=needed)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _stub(channel: grpc.Channel) -> net_pb2_grpc.NetServiceStub:
    return net_pb2_grpc.NetServiceStub(channel)


def _json(message: Any) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _network_id(stub: net_pb2_grpc.NetServiceStub, ref: str) -> str:
    return stub.GetNetwork(net_pb2.GetNetworkRequest(name=ref)).id if ref else ref


def _show(rows: list[tuple[str, str]], message: Any, fmt: str) -> None:
    if fmt == "json":
        print_json_line(_json(message))
        return
    print_table(("FIELD", "VALUE"), ((k, escape(v)) for k, v in rows))


def show_network(net: net_pb2.Network, fmt: str) -> None:
    """One network as JSON or a key/value table."""
    rows = [
        ("id", net.id),
        ("name", net.name),
        ("ipv4", net.ipv4_subnet or "-"),
        ("ipv6", net.ipv6_prefix or "-"),
        ("dns", ", ".join(net.dns_servers) or "-"),
        ("ntp", ", ".join(net.ntp_servers) or "-"),
        ("public", "yes" if net.is_public else "no"),
        ("nics", str(net.nic_count)),
        ("created", net.created_at),
        ("updated", net.updated_at),
    ]
    _show(rows, net, fmt)


def nic_state(state: int) -> str:
    """``ACTIVE`` for ``NIC_STATE_ACTIVE``."""
    return net_pb2.NicState.Name(state).removeprefix("NIC_STATE_")


def show_nic(nic: net_pb2.Nic, fmt: str) -> None:
    """One NIC as JSON or a key/value table."""
    rows = [
        ("id", nic.id),
        ("name", nic.name or "-"),
        ("network", nic.network_id),
        ("state", nic_state(nic.state)),
        ("tap", nic.tap_name or nic.socket_path),
        ("mac", nic.mac_address),
        ("ipv4", nic.ipv4_address or "-"),
        ("ipv6", nic.ipv6_address or "-"),
        ("routed", ", ".join([*nic.routed_ipv4_prefixes, *nic.routed_ipv6_prefixes]) or "-"),
        ("created", nic.created_at),
        ("updated", nic.updated_at),
    ]
    _show(rows, nic, fmt)


@click.group()
def network() -> None:
    """Manage virtual networks (mvirt-net)."""


@network.command("create")
@click.argument("name")
@click.option("--ipv4", "ipv4", metavar="CIDR", default="", help="IPv4 subnet, e.g. 10.0.0.0/24")
@click.option("--ipv6", "ipv6", metavar="CIDR", default="", help="IPv6 prefix, e.g. fd00::/64")
@click.option("--dns", multiple=True, metavar="IP", help="DNS server for guests (repeatable)")
@click.option("--ntp", multiple=True, metavar="IP", help="NTP server for guests (repeatable)")
@click.option("--public", is_flag=True, help="masquerade outbound traffic through the uplink")
@output_option()
@server_option()
def network_create(
    *,
    name: str,
    ipv4: str,
    ipv6: str,
    dns: tuple[str, ...],
    ntp: tuple[str, ...],
    public: bool,
    fmt: str,
    server: str,
) -> None:
    """Create a network with an IPv4 subnet, an IPv6 prefix, or both."""
    request = net_pb2.CreateNetworkRequest(
        name=name,
        ipv4_enabled=bool(ipv4),
        ipv4_subnet=ipv4,
        ipv6_enabled=bool(ipv6),
        ipv6_prefix=ipv6,
        dns_servers=list(dns),
        ntp_servers=list(ntp),
        is_public=public,
    )
    with connect(server, FLAG, SERVICE) as channel:
        show_network(_stub(channel).CreateNetwork(request), fmt)


@network.command("list")
@output_option()
@server_option()
def network_list(*, fmt: str, server: str) -> None:
    """List networks."""
    with connect(server, FLAG, SERVICE) as channel:
        networks = _stub(channel).ListNetworks(net_pb2.ListNetworksRequest()).networks
    if fmt == "json":
        for net in networks:
            print_json_line(_json(net))
        return
    _print_wide(
        ("ID", "NAME", "IPV4", "IPV6", "PUBLIC", "NICS"),
        [
            (
                n.id,
                escape(n.name),
                n.ipv4_subnet or "-",
                n.ipv6_prefix or "-",
                "yes" if n.is_public else "no",
                str(n.nic_count),
            )
            for n in networks
        ],
    )


@network.command("get")
@click.argument("network_ref", metavar="NETWORK")
@output_option()
@server_option()
def network_get(*, network_ref: str, fmt: str, server: str) -> None:
    """Show one network (by name or id)."""
    with connect(server, FLAG, SERVICE) as channel:
        show_network(_stub(channel).GetNetwork(net_pb2.GetNetworkRequest(name=network_ref)), fmt)


@network.command("update")
@click.argument("network_ref", metavar="NETWORK")
@click.option("--dns", multiple=True, metavar="IP", help="replaces the DNS servers")
@click.option("--ntp", multiple=True, metavar="IP", help="replaces the NTP servers")
@output_option()
@server_option()
def network_update(
    *, network_ref: str, dns: tuple[str, ...], ntp: tuple[str, ...], fmt: str, server: str
) -> None:
    """Replace a network's DNS and NTP servers (none given: cleared)."""
    with connect(server, FLAG, SERVICE) as channel:
        stub = _stub(channel)
        request = net_pb2.UpdateNetworkRequest(
            id=_network_id(stub, network_ref), dns_servers=list(dns), ntp_servers=list(ntp)
        )
        show_network(stub.UpdateNetwork(request), fmt)


@network.command("delete")
@click.argument("network_ref", metavar="NETWORK")
@click.option("--force", is_flag=True, help="also delete the network's NICs")
@server_option()
def network_delete(*, network_ref: str, force: bool, server: str) -> None:
    """Delete a network (with --force, its NICs too)."""
    with connect(server, FLAG, SERVICE) as channel:
        stub = _stub(channel)
        request = net_pb2.DeleteNetworkRequest(id=_network_id(stub, network_ref), force=force)
        reply = stub.DeleteNetwork(request)
    click.echo(f"{network_ref}: deleted ({reply.nics_deleted} NIC(s) with it)")


@click.group()
def nic() -> None:
    """Manage virtual NICs (mvirt-net)."""


@nic.command("create")
@click.argument("name", required=False, default="")
@click.option("--network", "network_ref", required=True, help="network name or id")
@click.option("--mac", default="", help="MAC address (default: derived from the NIC id)")
@click.option("--ipv4", default="", help="IPv4 address (default: the lowest free one)")
@click.option("--ipv6", default="", help="IPv6 address (default: the lowest free one)")
@click.option("--route", "routes", multiple=True, metavar="CIDR",
              help="prefix routed to this NIC (repeatable, IPv4 or IPv6)")  # fmt: skip
@output_option()
@server_option()
def nic_create(
    *,
    name: str,
    network_ref: str,
    mac: str,
    ipv4: str,
    ipv6: str,
    routes: tuple[str, ...],
    fmt: str,
    server: str,
) -> None:
    """Create a NIC (its TAP is created at once)."""
    request = net_pb2.CreateNicRequest(
        network_id=network_ref,
        name=name,
        mac_address=mac,
        ipv4_address=ipv4,
        ipv6_address=ipv6,
        routed_ipv4_prefixes=[r for r in routes if ":" not in r],
        routed_ipv6_prefixes=[r for r in routes if ":" in r],
    )
    with connect(server, FLAG, SERVICE) as channel:
        show_nic(_stub(channel).CreateNic(request), fmt)


@nic.command("list")
@click.option("--network", "network_ref", default="", help="only this network's NICs")
@output_option()
@server_option()
def nic_list(*, network_ref: str, fmt: str, server: str) -> None:
    """List NICs."""
    with connect(server, FLAG, SERVICE) as channel:
        nics = _stub(channel).ListNics(net_pb2.ListNicsRequest(network_id=network_ref)).nics
    if fmt == "json":
        for item in nics:
            print_json_line(_json(item))
        return
    _print_wide(
        ("ID", "NAME", "STATE", "TAP", "MAC", "IPV4", "IPV6"),
        [
            (
                n.id,
                escape(n.name) or "-",
                nic_state(n.state),
                n.tap_name,
                n.mac_address,
                n.ipv4_address or "-",
                n.ipv6_address or "-",
            )
            for n in nics
        ],
    )


@nic.command("get")
@click.argument("nic_ref", metavar="NIC")
@output_option()
@server_option()
def nic_get(*, nic_ref: str, fmt: str, server: str) -> None:
    """Show one NIC (by name or id)."""
    with connect(server, FLAG, SERVICE) as channel:
        show_nic(_stub(channel).GetNic(net_pb2.GetNicRequest(name=nic_ref)), fmt)


@nic.command("update")
@click.argument("nic_ref", metavar="NIC")
@click.option("--route", "routes", multiple=True, metavar="CIDR",
              help="replaces the routed prefixes (none given: cleared)")  # fmt: skip
@output_option()
@server_option()
def nic_update(*, nic_ref: str, routes: tuple[str, ...], fmt: str, server: str) -> None:
    """Replace a NIC's routed prefixes."""
    with connect(server, FLAG, SERVICE) as channel:
        stub = _stub(channel)
        nic_id = stub.GetNic(net_pb2.GetNicRequest(name=nic_ref)).id
        request = net_pb2.UpdateNicRequest(
            id=nic_id,
            routed_ipv4_prefixes=[r for r in routes if ":" not in r],
            routed_ipv6_prefixes=[r for r in routes if ":" in r],
        )
        show_nic(stub.UpdateNic(request), fmt)


@nic.command("delete")
@click.argument("nic_ref", metavar="NIC")
@server_option()
def nic_delete(*, nic_ref: str, server: str) -> None:
    """Delete a NIC and its TAP."""
    with connect(server, FLAG, SERVICE) as channel:
        stub = _stub(channel)
        nic_id = stub.GetNic(net_pb2.GetNicRequest(name=nic_ref)).id
        stub.DeleteNic(net_pb2.DeleteNicRequest(id=nic_id))
    click.echo(f"{nic_ref}: deleted")


COMMANDS = (network, nic)
