"""What mvirt-net owns in a namespace's kernel, read with ``ip -j`` and ``nft -j``, in a form
that compares equal when nothing changed (handles and counter values left out)."""

from __future__ import annotations

import json
from typing import Any

from tests.net.netns import Netns

TABLE_RANGE = range(5001, 9001)
RULE_PRIORITIES = (5000, 5100)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in ("handle", "packets", "bytes")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def nft_table(ns: Netns) -> list[dict[str, Any]]:
    """mvirt-net's nftables table as JSON objects."""
    out = ns.run("nft", "-j", "list", "table", "inet", "mvirt_net").stdout
    return list(json.loads(out)["nftables"])


def counter(ns: Netns, comment: str) -> int:
    """Packets counted by the rule with this comment."""
    for item in nft_table(ns):
        rule = item.get("rule")
        if rule and rule.get("comment") == comment:
            for expr in rule["expr"]:
                if "counter" in expr:
                    return int(expr["counter"]["packets"])
    raise AssertionError(f"no rule with comment {comment!r}")


def snapshot(ns: Netns) -> dict[str, Any]:
    """Rules, routes, TAPs, gateway addresses and the nftables table mvirt-net owns."""
    rules = []
    for family in ("-4", "-6"):
        for rule in json.loads(ns.run("ip", "-j", family, "rule").stdout):
            if rule.get("priority") in RULE_PRIORITIES:
                rules.append((family, rule))
    routes = []
    for family in ("-4", "-6"):
        out = ns.run("ip", "-j", family, "route", "show", "table", "all").stdout
        for route in json.loads(out):
            table = route.get("table")
            if str(table).isdigit() and int(table) in TABLE_RANGE:
                routes.append((family, route))
    links = {}
    for link in json.loads(ns.run("ip", "-j", "addr").stdout):
        if link["ifname"].startswith("mvn"):
            links[link["ifname"]] = (
                link["ifindex"],
                sorted((a["local"], a["prefixlen"]) for a in link["addr_info"]),
            )
    return {
        "rules": sorted(json.dumps(r, sort_keys=True) for r in rules),
        "routes": sorted(json.dumps(r, sort_keys=True) for r in routes),
        "links": links,
        "nft": _strip(nft_table(ns)),
    }
