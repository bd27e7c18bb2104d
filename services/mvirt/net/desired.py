"""The kernel state the database asks for, as plain values: TAPs, routes, rules and the
nftables ruleset. Rendering is pure, so reconciliation is "render, compare, apply" and two
renders of one database are equal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mvirt.net.model import NetworkRecord, NicRecord

TABLE_BASE = 5000
"""Routing tables of networks are TABLE_BASE+1 ... TABLE_BASE+TABLE_SPAN."""
TABLE_SPAN = 4000
RULE_IIF_PRIORITY = 5000
"""``iif <tap> lookup <table>``: a NIC's packets are routed in its network's table."""
RULE_TO_PRIORITY = 5100
"""``to <subnet> lookup <table>``: packets for a network's guests (from the host, the uplink,
or return traffic of masquerading) find them in that network's table."""
OWNED_RULE_PRIORITIES = (RULE_IIF_PRIORITY, RULE_TO_PRIORITY)


def owns_table(table: int) -> bool:
    """True for the routing tables mvirt-net manages."""
    return TABLE_BASE < table <= TABLE_BASE + TABLE_SPAN


@dataclass(frozen=True, order=True)
class Route:
    """One route in a network's table; ``tap`` empty for an ``unreachable`` route."""

    family: int
    table: int
    dst: str
    dst_len: int
    tap: str
    gateway: str = ""


@dataclass(frozen=True, order=True)
class Rule:
    """One policy routing rule."""

    family: int
    priority: int
    table: int
    iifname: str = ""
    dst: str = ""
    dst_len: int = 0


@dataclass(frozen=True)
class DesiredState:
    """Everything mvirt-net owns in the kernel."""

    taps: tuple[str, ...]
    routes: frozenset[Route]
    rules: frozenset[Rule]
    uplink: str | None
    networks: tuple[NetworkRecord, ...]
    nics: tuple[NicRecord, ...]


AF_INET = 2
AF_INET6 = 10


def render(
    networks: Iterable[NetworkRecord], nics: Iterable[NicRecord], uplink: str | None
) -> DesiredState:
    """The kernel state for these networks and NICs (see the module docstring)."""
    networks = tuple(networks)
    nics = tuple(nics)
    tables = {net.id: net.table for net in networks}
    routes: set[Route] = set()
    rules: set[Rule] = set()
    for net in networks:
        if net.ipv4_subnet is not None:
            subnet = net.ipv4_subnet
            rules.add(
                Rule(
                    AF_INET,
                    RULE_TO_PRIORITY,
                    net.table,
                    "",
                    str(subnet.network_address),
                    subnet.prefixlen,
                )
            )
        if net.ipv6_prefix is not None:
            prefix = net.ipv6_prefix
            rules.add(
                Rule(
                    AF_INET6,
                    RULE_TO_PRIORITY,
                    net.table,
                    "",
                    str(prefix.network_address),
                    prefix.prefixlen,
                )
            )
        if not net.is_public or uplink is None:
            # A private network's guests reach their own network (and the host) only.
            routes.add(Route(AF_INET, net.table, "0.0.0.0", 0, ""))
            routes.add(Route(AF_INET6, net.table, "::", 0, ""))
    for nic in nics:
        table = tables[nic.network_id]
        rules.add(Rule(AF_INET, RULE_IIF_PRIORITY, table, nic.tap))
        rules.add(Rule(AF_INET6, RULE_IIF_PRIORITY, table, nic.tap))
        if nic.ipv4 is not None:
            routes.add(Route(AF_INET, table, str(nic.ipv4), 32, nic.tap))
        if nic.ipv6 is not None:
            routes.add(Route(AF_INET6, table, str(nic.ipv6), 128, nic.tap))
        for net4 in nic.routed_v4:
            gateway = "" if nic.ipv4 is None else str(nic.ipv4)
            routes.add(
                Route(AF_INET, table, str(net4.network_address), net4.prefixlen, nic.tap, gateway)
            )
        for net6 in nic.routed_v6:
            gateway = "" if nic.ipv6 is None else str(nic.ipv6)
            routes.add(
                Route(AF_INET6, table, str(net6.network_address), net6.prefixlen, nic.tap, gateway)
            )
    return DesiredState(
        taps=tuple(sorted(nic.tap for nic in nics)),
        routes=frozenset(routes),
        rules=frozenset(rules),
        uplink=uplink,
        networks=networks,
        nics=nics,
    )
