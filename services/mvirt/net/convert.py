"""Records ↔ ``mvirt.net`` protobuf messages."""

from __future__ import annotations

from mvirt.net.model import NetworkRecord, NicRecord, NicState
from mvirt.proto import net_pb2


def network_to_proto(net: NetworkRecord, nic_count: int) -> net_pb2.Network:
    """The wire form of a network."""
    return net_pb2.Network(
        id=net.id,
        name=net.name,
        ipv4_enabled=net.ipv4_subnet is not None,
        ipv4_subnet="" if net.ipv4_subnet is None else str(net.ipv4_subnet),
        ipv6_enabled=net.ipv6_prefix is not None,
        ipv6_prefix="" if net.ipv6_prefix is None else str(net.ipv6_prefix),
        dns_servers=list(net.dns_servers),
        ntp_servers=list(net.ntp_servers),
        nic_count=nic_count,
        created_at=net.created_at,
        updated_at=net.updated_at,
        is_public=net.is_public,
    )


def nic_to_proto(nic: NicRecord, state: NicState) -> net_pb2.Nic:
    """The wire form of a NIC; the TAP is its attachment point."""
    return net_pb2.Nic(
        id=nic.id,
        name=nic.name,
        network_id=nic.network_id,
        mac_address=nic.mac,
        ipv4_address="" if nic.ipv4 is None else str(nic.ipv4),
        ipv6_address="" if nic.ipv6 is None else str(nic.ipv6),
        routed_ipv4_prefixes=[str(n) for n in nic.routed_v4],
        routed_ipv6_prefixes=[str(n) for n in nic.routed_v6],
        socket_path=nic.tap,
        state=int(state),  # type: ignore[arg-type]
        created_at=nic.created_at,
        updated_at=nic.updated_at,
        tap_name=nic.tap,
    )
