"""The records mvirt-net keeps: networks and the NICs attached to them."""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

IPv4Net = ipaddress.IPv4Network
IPv6Net = ipaddress.IPv6Network

GATEWAY_V4 = ipaddress.IPv4Address("169.254.0.1")
GATEWAY_V6 = ipaddress.IPv6Address("fe80::1")
TAP_PREFIX = "mvn"
"""Every TAP mvirt-net owns starts with this; reconciliation removes unknown ones."""


class NicState(enum.IntEnum):
    """Values of ``mvirt.net.NicState``."""

    UNSPECIFIED = 0
    CREATED = 1
    ACTIVE = 2
    ERROR = 3


@dataclass(frozen=True)
class NetworkRecord:
    """One isolated routed network."""

    id: str
    name: str
    ipv4_subnet: IPv4Net | None
    ipv6_prefix: IPv6Net | None
    dns_servers: tuple[str, ...]
    ntp_servers: tuple[str, ...]
    is_public: bool
    table: int
    """The kernel routing table of this network."""
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class NicRecord:
    """One vNIC: a TAP, a MAC, one /32 and one /128, and routed prefixes."""

    id: str
    name: str
    network_id: str
    mac: str
    ipv4: ipaddress.IPv4Address | None
    ipv6: ipaddress.IPv6Address | None
    routed_v4: tuple[IPv4Net, ...]
    routed_v6: tuple[IPv6Net, ...]
    tap: str
    created_at: str
    updated_at: str


def tap_name(nic_id: str) -> str:
    """The TAP of a NIC, named from its id (15 characters at most, as Linux requires)."""
    return TAP_PREFIX + nic_id.replace("-", "")[:12]
