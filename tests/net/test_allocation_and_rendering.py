"""Pure parts of mvirt-net: address and MAC allocation, validation, and the rendering of the
kernel state and nftables document from records."""

from __future__ import annotations

import ipaddress

import pytest

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.net import allocation, nftables, validation
from mvirt.net.desired import AF_INET, RULE_IIF_PRIORITY, Route, Rule, render
from mvirt.net.model import NetworkRecord, NicRecord, tap_name

V4 = ipaddress.IPv4Network("10.0.0.0/29")
V6 = ipaddress.IPv6Network("fd00::/120")


def test_lowest_free_address_skips_network_and_broadcast() -> None:
    taken = {ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.3")}
    assert allocation.next_free_v4(V4, taken) == ipaddress.IPv4Address("10.0.0.2")
    full = {ipaddress.IPv4Address(f"10.0.0.{i}") for i in range(1, 7)}
    assert allocation.next_free_v4(V4, full) is None
    assert not allocation.usable_v4(V4, ipaddress.IPv4Address("10.0.0.7"))
    assert allocation.next_free_v6(V6, set()) == ipaddress.IPv6Address("fd00::1")


def test_macs_are_local_unicast_stable_and_differ_per_attempt() -> None:
    mac = allocation.mac_for("nic-1")
    assert mac == allocation.mac_for("nic-1") != allocation.mac_for("nic-1", 1)
    first = int(mac[:2], 16)
    assert first & 0b10 and not first & 1


def test_validation_normalises_and_refuses() -> None:
    assert validation.parse_mac("02-AA-BB-CC-DD-EE") == "02:aa:bb:cc:dd:ee"
    with pytest.raises(InvalidArgumentError, match="routed"):
        validation.parse_routed4(["10.0.0.0/24", "10.0.0.128/25"], "routed_ipv4_prefixes")
    with pytest.raises(InvalidArgumentError, match="ipv6_prefix"):
        validation.parse_prefix6("ff02::/16")


def records() -> tuple[list[NetworkRecord], list[NicRecord]]:
    net = NetworkRecord("n1", "prod", V4, V6, (), (), False, 5001, "t", "t")
    nic = NicRecord(
        "1234567890abcdef", "", "n1", "02:00:00:00:00:01",
        ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv6Address("fd00::1"),
        (ipaddress.IPv4Network("192.0.2.0/28"),), (), tap_name("1234567890abcdef"), "t", "t",
    )  # fmt: skip
    return [net], [nic]


def test_render_routes_rules_and_isolation() -> None:
    nets, nics = records()
    state = render(nets, nics, None)
    assert state == render(nets, nics, None)
    tap = "mvn1234567890ab"
    assert state.taps == (tap,)
    assert Route(AF_INET, 5001, "10.0.0.1", 32, tap) in state.routes
    assert Route(AF_INET, 5001, "192.0.2.0", 28, tap, "10.0.0.1") in state.routes
    assert Route(AF_INET, 5001, "0.0.0.0", 0, "") in state.routes  # private: unreachable
    assert Rule(AF_INET, RULE_IIF_PRIORITY, 5001, tap) in state.rules
    public = [NetworkRecord(**{**nets[0].__dict__, "is_public": True})]
    assert Route(AF_INET, 5001, "0.0.0.0", 0, "") not in render(public, nics, "eth0").routes


def test_nftables_document_replaces_the_table_and_names_counters() -> None:
    nets, nics = records()
    doc = nftables.ruleset(render(nets, nics, "eth0"))["nftables"]
    assert [next(iter(c)) for c in doc[1:4]] == ["add", "delete", "add"]
    comments = [c["add"]["rule"].get("comment") for c in doc if "rule" in c.get("add", {})]
    assert f"antispoof ipv4 {nics[0].id}" in comments
    assert f"antispoof ipv6 {nics[0].id}" in comments
    assert not any(str(c).startswith("masquerade") for c in comments)  # not public
