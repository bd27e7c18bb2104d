"""mvirt-net's nftables table, rendered as nftables JSON and applied in one transaction.

The table ``inet mvirt_net`` belongs to mvirt-net alone. :func:`ruleset` renders its whole
content from a :class:`DesiredState`; :func:`apply` sends "add table, delete table, add table
with everything" to ``nft -j -f -``, which the kernel applies atomically: there is never a
moment without anti-spoofing, and applying the same state twice changes nothing.

Chains:
- ``antispoof`` (prerouting, raw priority): a DHCPv4/DHCPv6 request from a TAP whose
  link-layer source is not the NIC's MAC is counted and dropped; a packet from a TAP whose
  source is not the NIC's address or one of its routed prefixes is counted and dropped
  (DHCPv4 from 0.0.0.0 and IPv6 link-local/unspecified sources, which DHCPv6, NDP and DAD
  need, pass, as do the host's own DHCPv4 broadcasts looped back with the TAP as input
  device).
- ``forward``: forwarding only inside one network, and from public networks to the uplink;
  everything else that enters or leaves a TAP is counted and dropped.
- ``postrouting`` (nat): public networks are masqueraded through the uplink.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Sequence
from typing import Any

from mvirt.net.desired import DesiredState
from mvirt.net.model import GATEWAY_V4, NicRecord

TABLE = "mvirt_net"
FAMILY = "inet"
NFT = "nft"

log = logging.getLogger("mvirt.net.nftables")


class NftError(Exception):
    """nft refused the ruleset or could not run; ``str()`` says why."""


Expr = dict[str, Any]


def _match(left: Expr, right: Any, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def _payload(protocol: str, field: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": field}}


def _prefix(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Any:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _set(items: Sequence[Any]) -> Any:
    return {"set": list(items)}


COUNTER: Expr = {"counter": {"packets": 0, "bytes": 0}}
DROP: Expr = {"drop": None}
ACCEPT: Expr = {"accept": None}


def antispoof_comment(nic: NicRecord, family: str) -> str:
    """The comment of a NIC's anti-spoofing rule (its counter is read by this name)."""
    return f"antispoof {family} {nic.id}"


def dhcp_mac_comment(nic: NicRecord) -> str:
    """The comment of the rule that drops a NIC's DHCP requests from another MAC."""
    return f"dhcp from another mac {nic.id}"


def _antispoof_rules(nic: NicRecord) -> list[tuple[list[Expr], str]]:
    iif = _match(_meta("iifname"), nic.tap)
    rules: list[tuple[list[Expr], str]] = []
    # DHCP is answered for the NIC's own MAC only: a request from another link-layer source
    # never reaches the servers (DHCPv6 clients name no MAC the server could check: their DUID
    # may be another interface's or no MAC at all).
    rules.append(
        (
            [
                iif,
                _match(_payload("udp", "dport"), _set([67, 547])),
                _match(_payload("ether", "saddr"), nic.mac, "!="),
                COUNTER,
                DROP,
            ],
            dhcp_mac_comment(nic),
        )
    )
    # DHCPv4 clients send from 0.0.0.0 before they have an address.
    rules.append(
        (
            [
                iif,
                _match(_payload("ip", "saddr"), "0.0.0.0"),
                _match(_payload("udp", "dport"), 67),
                ACCEPT,
            ],
            f"dhcp {nic.id}",
        )
    )
    allowed4 = [
        _prefix(ipaddress.IPv4Network(f"{nic.ipv4}/32")) if nic.ipv4 else None,
        *(_prefix(n) for n in nic.routed_v4),
    ]
    allowed4 = [a for a in allowed4 if a is not None]
    v4 = [iif, _match(_meta("nfproto"), "ipv4")]
    if allowed4:
        v4.append(_match(_payload("ip", "saddr"), _set(allowed4), "!="))
    rules.append(([*v4, COUNTER, DROP], antispoof_comment(nic, "ipv4")))
    allowed6: list[Any] = [
        _prefix(ipaddress.IPv6Network("fe80::/10")),
        "::",
        *(_prefix(n) for n in nic.routed_v6),
    ]
    if nic.ipv6 is not None:
        allowed6.append(str(nic.ipv6))
    v6 = [iif, _match(_meta("nfproto"), "ipv6")]
    v6.append(_match(_payload("ip6", "saddr"), _set(allowed6), "!="))
    rules.append(([*v6, COUNTER, DROP], antispoof_comment(nic, "ipv6")))
    return rules


def ruleset(state: DesiredState) -> dict[str, Any]:
    """The nftables JSON document that replaces mvirt-net's table with ``state``."""
    table = {"family": FAMILY, "name": TABLE}
    commands: list[dict[str, Any]] = [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
    ]

    def chain(name: str, kind: str, hook: str, prio: int) -> None:
        commands.append(
            {
                "add": {
                    "chain": {
                        **{"family": FAMILY, "table": TABLE, "name": name},
                        "type": kind,
                        "hook": hook,
                        "prio": prio,
                        "policy": "accept",
                    }
                }
            }
        )

    def rule(chain_name: str, expr: list[Expr], comment: str | None = None) -> None:
        body: dict[str, Any] = {"family": FAMILY, "table": TABLE, "chain": chain_name}
        body["expr"] = expr
        if comment:
            body["comment"] = comment
        commands.append({"add": {"rule": body}})

    chain("antispoof", "filter", "prerouting", -300)
    chain("forward", "filter", "forward", 0)
    chain("postrouting", "nat", "postrouting", 100)
    # The host's own DHCPv4 broadcasts on a TAP come back through prerouting as looped-back
    # copies with the TAP as input device (nft reports them as pkttype broadcast, so they
    # cannot be told apart that way). A guest forging one gains nothing: a limited broadcast
    # is never forwarded, and nothing on the host listens on port 68.
    rule(
        "antispoof",
        [
            _match(_payload("ip", "saddr"), str(GATEWAY_V4)),
            _match(_payload("ip", "daddr"), "255.255.255.255"),
            _match(_payload("udp", "sport"), 67),
            _match(_payload("udp", "dport"), 68),
            ACCEPT,
        ],
        "own dhcp broadcasts",
    )
    for nic in state.nics:
        for expr, comment in _antispoof_rules(nic):
            rule("antispoof", expr, comment)
    all_taps = [nic.tap for nic in state.nics]
    if all_taps:
        rule(
            "forward",
            [_match({"ct": {"key": "state"}}, ["established", "related"], "in"), ACCEPT],
        )
    for net in state.networks:
        taps = [nic.tap for nic in state.nics if nic.network_id == net.id]
        if not taps:
            continue
        rule(
            "forward",
            [_match(_meta("iifname"), _set(taps)), _match(_meta("oifname"), _set(taps)), ACCEPT],
            f"inside {net.id}",
        )
        if net.is_public and state.uplink:
            rule(
                "forward",
                [
                    _match(_meta("iifname"), _set(taps)),
                    _match(_meta("oifname"), state.uplink),
                    ACCEPT,
                ],
                f"outbound {net.id}",
            )
            if net.ipv4_subnet is not None:
                rule(
                    "postrouting",
                    [
                        _match(_payload("ip", "saddr"), _prefix(net.ipv4_subnet)),
                        _match(_meta("oifname"), state.uplink),
                        {"masquerade": None},
                    ],
                    f"masquerade {net.id}",
                )
            if net.ipv6_prefix is not None:
                rule(
                    "postrouting",
                    [
                        _match(_payload("ip6", "saddr"), _prefix(net.ipv6_prefix)),
                        _match(_meta("oifname"), state.uplink),
                        {"masquerade": None},
                    ],
                    f"masquerade6 {net.id}",
                )
    if all_taps:
        rule("forward", [_match(_meta("iifname"), _set(all_taps)), COUNTER, DROP], "isolate in")
        rule("forward", [_match(_meta("oifname"), _set(all_taps)), COUNTER, DROP], "isolate out")
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


def _run(args: list[str], stdin: str) -> str:
    """Runs nft with ``args`` (never a shell), returning stdout or raising NftError."""
    try:
        proc = subprocess.run(
            [NFT, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NftError(f"cannot run {NFT}: {exc}; install nftables") from None
    if proc.returncode != 0:
        raise NftError(f"{NFT} {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def apply(state: DesiredState) -> None:
    """Replaces mvirt-net's table with the rendering of ``state`` in one transaction."""
    _run(["-j", "-f", "-"], json.dumps(ruleset(state)))


def delete_table() -> None:
    """Removes mvirt-net's table (if it exists)."""
    table = {"family": FAMILY, "name": TABLE}
    doc = {"nftables": [{"add": {"table": table}}, {"delete": {"table": table}}]}
    _run(["-j", "-f", "-"], json.dumps(doc))


def list_table() -> dict[str, Any]:
    """mvirt-net's table as nft reports it (JSON)."""
    out = _run(["-j", "list", "table", FAMILY, TABLE], "")
    result: dict[str, Any] = json.loads(out)
    return result
