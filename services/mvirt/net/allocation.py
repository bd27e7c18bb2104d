"""Address and MAC allocation: pure functions over what is taken, so the choice is
deterministic (the lowest free address) and testable without a store or a kernel."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Container, Iterator

MAX_SCAN = 1 << 20
"""Addresses probed before a network counts as full (a /64 is never scanned to its end)."""


def _candidates4(subnet: ipaddress.IPv4Network) -> Iterator[ipaddress.IPv4Address]:
    # The network and broadcast addresses stay unused: common clients refuse them.
    first = int(subnet.network_address) + 1
    last = int(subnet.broadcast_address) - 1
    for value in range(first, min(last, first + MAX_SCAN) + 1):
        yield ipaddress.IPv4Address(value)


def _candidates6(prefix: ipaddress.IPv6Network) -> Iterator[ipaddress.IPv6Address]:
    # ::0 of a prefix is the subnet-router anycast address.
    first = int(prefix.network_address) + 1
    last = int(prefix.broadcast_address)
    for value in range(first, min(last, first + MAX_SCAN) + 1):
        yield ipaddress.IPv6Address(value)


def usable_v4(subnet: ipaddress.IPv4Network, address: ipaddress.IPv4Address) -> bool:
    """True if ``address`` may be given to a NIC of ``subnet``."""
    return address in subnet and address not in (subnet.network_address, subnet.broadcast_address)


def usable_v6(prefix: ipaddress.IPv6Network, address: ipaddress.IPv6Address) -> bool:
    """True if ``address`` may be given to a NIC of ``prefix``."""
    return address in prefix and address != prefix.network_address


def next_free_v4(
    subnet: ipaddress.IPv4Network, taken: Container[ipaddress.IPv4Address]
) -> ipaddress.IPv4Address | None:
    """The lowest usable address of ``subnet`` not in ``taken`` (None when full)."""
    return next((a for a in _candidates4(subnet) if a not in taken), None)


def next_free_v6(
    prefix: ipaddress.IPv6Network, taken: Container[ipaddress.IPv6Address]
) -> ipaddress.IPv6Address | None:
    """The lowest usable address of ``prefix`` not in ``taken`` (None when full)."""
    return next((a for a in _candidates6(prefix) if a not in taken), None)


def mac_for(nic_id: str, attempt: int = 0) -> str:
    """A locally administered unicast MAC derived from the NIC id (``attempt`` picks another
    one after a collision)."""
    digest = hashlib.sha256(f"{nic_id}/{attempt}".encode()).digest()
    octets = [0x02, *digest[:5]]
    return ":".join(f"{o:02x}" for o in octets)
