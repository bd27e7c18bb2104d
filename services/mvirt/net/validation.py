"""Checks of request fields; each failure names the field and says what would be accepted.

The IPv4 and IPv6 checks are one check each, driven by a table of what the two families
differ in (:class:`_Family`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from mvirt.daemon.errors import InvalidArgumentError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAX_SERVERS = 8
MAX_ROUTED_PREFIXES = 64
MIN_V4_PREFIXLEN = 8
MAX_V4_PREFIXLEN = 30
MIN_V6_PREFIXLEN = 16
MAX_V6_PREFIXLEN = 120

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
_Net = TypeVar("_Net", ipaddress.IPv4Network, ipaddress.IPv6Network)
_Addr = TypeVar("_Addr", ipaddress.IPv4Address, ipaddress.IPv6Address)


@dataclass(frozen=True)
class _Family(Generic[_Net, _Addr]):
    """What the checks of one address family differ in: types, limits and error wording."""

    name: str
    network: type[_Net]
    address: type[_Addr]
    address_example: str
    min_prefixlen: int
    max_prefixlen: int
    reserved: tuple[_Net, ...]
    """Ranges a network or routed prefix may never use: they are the gateway's, the host's
    own or not unicast."""
    reserved_advice: str
    """How an error about a network's prefix names the reserved ranges, and what to use."""

    def is_reserved(self, net: _Net) -> bool:
        """True if ``net`` overlaps a reserved range."""
        return any(net.overlaps(r) for r in self.reserved)


_V4 = _Family(
    name="IPv4",
    network=ipaddress.IPv4Network,
    address=ipaddress.IPv4Address,
    address_example="10.0.0.5",
    min_prefixlen=MIN_V4_PREFIXLEN,
    max_prefixlen=MAX_V4_PREFIXLEN,
    reserved=tuple(
        ipaddress.IPv4Network(n)
        for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3")
    ),
    reserved_advice="(0/8, loopback, link-local 169.254/16 used by the gateway, multicast); "
    "use a private range like 10.0.0.0/24",
)
_V6 = _Family(
    name="IPv6",
    network=ipaddress.IPv6Network,
    address=ipaddress.IPv6Address,
    address_example="fd00::5",
    min_prefixlen=MIN_V6_PREFIXLEN,
    max_prefixlen=MAX_V6_PREFIXLEN,
    reserved=tuple(
        ipaddress.IPv6Network(n) for n in ("::/8", "fe80::/10", "ff00::/8", "::ffff:0:0/96")
    ),
    reserved_advice="(::/8, link-local fe80::/10 used by the gateway, multicast); "
    "use a unique local prefix like fd00:1::/64",
)


def check_name(value: str, field: str, *, required: bool = True) -> str:
    """A network or NIC name: 1-63 letters, digits, '.', '_' or '-', starting alphanumeric."""
    if not value and not required:
        return value
    if not NAME_PATTERN.match(value):
        raise InvalidArgumentError(
            f"{field} {value!r} is not a valid name: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _network(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"{field} {value!r} is not a CIDR prefix ({exc}); write it like 10.0.0.0/24 or "
            "fd00::/64 with the host bits zero"
        ) from None


def overlaps(a: IPNet, b: IPNet) -> bool:
    """True if two prefixes of the same family share an address."""
    if isinstance(a, ipaddress.IPv4Network) and isinstance(b, ipaddress.IPv4Network):
        return a.overlaps(b)
    if isinstance(a, ipaddress.IPv6Network) and isinstance(b, ipaddress.IPv6Network):
        return a.overlaps(b)
    return False


def _network_of(value: str, field: str, family: _Family[_Net, _Addr], subject: str) -> _Net:
    """``value`` as a CIDR prefix of ``family``. A malformed CIDR is reported as ``field``'s,
    one of the other family as ``subject``'s (the field, or an entry of it)."""
    net = _network(value, field)
    if not isinstance(net, family.network):
        raise InvalidArgumentError(f"{subject} {value!r} is not an {family.name} prefix")
    return net


def _network_prefix(value: str, field: str, family: _Family[_Net, _Addr]) -> _Net:
    net = _network_of(value, field, family, field)
    if not family.min_prefixlen <= net.prefixlen <= family.max_prefixlen:
        raise InvalidArgumentError(
            f"{field} {value!r} has length /{net.prefixlen}; use /{family.min_prefixlen} to "
            f"/{family.max_prefixlen}"
        )
    if family.is_reserved(net):
        raise InvalidArgumentError(
            f"{field} {value!r} overlaps a reserved range {family.reserved_advice}"
        )
    return net


def parse_subnet4(value: str, field: str = "ipv4_subnet") -> ipaddress.IPv4Network:
    """An IPv4 network subnet (/8 to /30, not loopback, link-local, multicast or 0/8)."""
    return _network_prefix(value, field, _V4)


def parse_prefix6(value: str, field: str = "ipv6_prefix") -> ipaddress.IPv6Network:
    """An IPv6 network prefix (/16 to /120, not link-local, multicast or loopback)."""
    return _network_prefix(value, field, _V6)


def parse_servers(values: Iterable[str], field: str) -> tuple[str, ...]:
    """DNS or NTP servers: IP addresses (DHCP hands out addresses, not names)."""
    servers: list[str] = []
    for value in values:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise InvalidArgumentError(
                f"{field} entry {value!r} is not an IP address; give IPv4 or IPv6 addresses"
            ) from None
        if address.is_multicast or address.is_unspecified:
            raise InvalidArgumentError(f"{field} entry {value!r} is not a unicast address")
        if str(address) in servers:
            raise InvalidArgumentError(f"{field} lists {value!r} twice")
        servers.append(str(address))
    if len(servers) > MAX_SERVERS:
        raise InvalidArgumentError(f"{field} has {len(servers)} entries; at most {MAX_SERVERS}")
    return tuple(servers)


def parse_mac(value: str, field: str = "mac_address") -> str:
    """A unicast MAC address in lower-case colon form."""
    mac = value.strip().lower().replace("-", ":")
    if not MAC_PATTERN.match(mac):
        raise InvalidArgumentError(
            f"{field} {value!r} is not a MAC address; write six hex octets like 02:00:00:aa:bb:cc"
        )
    if int(mac[:2], 16) & 1:
        raise InvalidArgumentError(f"{field} {value!r} is a multicast address; use a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise InvalidArgumentError(f"{field} {value!r} is the zero address")
    return mac


def _address(value: str, field: str, family: _Family[_Net, _Addr]) -> _Addr:
    try:
        return family.address(value.strip())
    except ValueError:
        raise InvalidArgumentError(
            f"{field} {value!r} is not an {family.name} address (no prefix length: like "
            f"{family.address_example})"
        ) from None


def parse_address4(value: str, field: str = "ipv4_address") -> ipaddress.IPv4Address:
    """An IPv4 address (no prefix length)."""
    return _address(value, field, _V4)


def parse_address6(value: str, field: str = "ipv6_address") -> ipaddress.IPv6Address:
    """An IPv6 address (no prefix length)."""
    return _address(value, field, _V6)


def _routed(values: Iterable[str], field: str, family: _Family[_Net, _Addr]) -> tuple[_Net, ...]:
    nets = tuple(_network_of(value, field, family, f"{field} entry") for value in values)
    if len(nets) > MAX_ROUTED_PREFIXES:
        raise InvalidArgumentError(
            f"{field} has {len(nets)} entries; at most {MAX_ROUTED_PREFIXES}"
        )
    for index, net in enumerate(nets):
        if net.prefixlen == 0:
            raise InvalidArgumentError(f"{field} entry {net} is a default route; not routable")
        if family.is_reserved(net):
            raise InvalidArgumentError(
                f"{field} entry {net} overlaps a reserved range (loopback, link-local, multicast)"
            )
        for other in nets[:index]:
            if net.overlaps(other):
                raise InvalidArgumentError(f"{field} entries {other} and {net} overlap")
    return nets


def parse_routed4(values: Iterable[str], field: str) -> tuple[ipaddress.IPv4Network, ...]:
    """Routed IPv4 prefixes: strict CIDRs, unicast, no default route, no duplicates."""
    return _routed(values, field, _V4)


def parse_routed6(values: Iterable[str], field: str) -> tuple[ipaddress.IPv6Network, ...]:
    """Routed IPv6 prefixes: strict CIDRs, unicast, no default route, no duplicates."""
    return _routed(values, field, _V6)
