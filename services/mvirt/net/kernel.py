"""The kernel data plane: TAPs, addresses, routes and rules through netlink (pyroute2), the
nftables table through :mod:`mvirt.net.nftables`.

:meth:`KernelDataPlane.apply` makes the kernel match a :class:`DesiredState`: it lists what
mvirt-net owns (TAPs named ``mvn…``, routes in its tables, rules at its priorities), adds
what is missing, replaces the nftables table, then removes what is not wanted, and leaves the
rest alone. A TAP that exists is never
recreated, so a hypervisor holding it keeps its link across a restart of the daemon, and
applying one state twice changes nothing.

The calls block (netlink round trips, one nft run); the manager runs them in a worker thread
and never two at once.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from mvirt.net import nftables
from mvirt.net.desired import (
    OWNED_RULE_PRIORITIES,
    DesiredState,
    Route,
    Rule,
    owns_table,
)
from mvirt.net.model import GATEWAY_V4, GATEWAY_V6, TAP_PREFIX

log = logging.getLogger("mvirt.net.kernel")
T = TypeVar("T")

RTN_UNICAST = 1
RTN_UNREACHABLE = 7
RTNH_F_ONLINK = 4
IFA_F_NODAD = 0x02
IFF_UP = 0x1
ESRCH = 3
SCOPE_LINK = 253
_ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


class DataPlaneError(Exception):
    """The kernel refused a change; ``str()`` says which and why."""


def _write_sysctl(path: str, value: str) -> None:
    Path("/proc/sys", path).write_text(value)


class KernelDataPlane:
    """mvirt-net's view of the kernel of the network namespace it runs in."""

    def __init__(self) -> None:
        # pyroute2's synchronous API runs its own event loop: it lives in one worker thread,
        # never in the daemon's loop thread, and every call goes through that thread.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._ip: IPRoute = self._worker.submit(IPRoute).result()
        self._applied: DesiredState | None = None
        self._taps: dict[str, int] = {}

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._worker.submit(fn, *args).result()

    def close(self) -> None:
        """Release the netlink socket (the kernel state stays)."""
        self._call(self._ip.close)
        self._worker.shutdown()

    def apply(self, state: DesiredState, rollback: bool = False) -> None:
        """Makes the kernel match ``state`` (see the module docstring). With ``rollback``
        (undoing a change nft refused, whose table is therefore still the old one), what the
        change added is removed even if nft refuses again."""
        self._call(self._apply, state, rollback)

    def carrier(self) -> dict[str, bool]:
        """Owned TAPs → True when a hypervisor holds the TAP (the link has carrier)."""
        return self._call(self._carrier)

    # -- reading ---------------------------------------------------------------------------

    def _links(self) -> dict[str, Any]:
        return {str(link.get_attr("IFLA_IFNAME")): link for link in self._ip.get_links()}

    def owned_taps(self) -> dict[str, int]:
        """The TAPs mvirt-net owns that exist now: name → interface index."""
        taps: dict[str, int] = {}
        for name, link in self._links().items():
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if name.startswith(TAP_PREFIX) and kind == "tun":
                taps[name] = int(link["index"])
        return taps

    def _carrier(self) -> dict[str, bool]:
        result: dict[str, bool] = {}
        for name, link in self._links().items():
            if name.startswith(TAP_PREFIX):
                result[name] = link.get_attr("IFLA_OPERSTATE") == "UP"
        return result

    def routes(self) -> set[Route]:
        """The routes in mvirt-net's tables."""
        names = {int(link["index"]): name for name, link in self._links().items()}
        found: set[Route] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self._ip.route("dump", family=family):
                table = msg.get_attr("RTA_TABLE") or msg["table"]
                if not owns_table(int(table)):
                    continue
                dst = msg.get_attr("RTA_DST") or _ANY[family]
                if msg["type"] == RTN_UNREACHABLE:
                    found.add(Route(family, int(table), dst, int(msg["dst_len"]), ""))
                    continue
                oif = msg.get_attr("RTA_OIF")
                gateway = msg.get_attr("RTA_GATEWAY") or ""
                found.add(
                    Route(
                        family,
                        int(table),
                        dst,
                        int(msg["dst_len"]),
                        names.get(int(oif or 0), f"#{oif}"),
                        gateway,
                    )
                )
        return found

    def rules(self) -> set[Rule]:
        """The policy rules at mvirt-net's priorities."""
        found: set[Rule] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self._ip.get_rules(family=family):
                priority = msg.get_attr("FRA_PRIORITY") or 0
                if priority not in OWNED_RULE_PRIORITIES:
                    continue
                found.add(
                    Rule(
                        family,
                        int(priority),
                        int(msg.get_attr("FRA_TABLE") or msg["table"]),
                        msg.get_attr("FRA_IIFNAME") or "",
                        msg.get_attr("FRA_DST") or "",
                        int(msg["dst_len"]),
                    )
                )
        return found

    # -- changing --------------------------------------------------------------------------

    def _apply(self, state: DesiredState, rollback: bool) -> None:
        # Make before break: everything new is added first, then the nftables table is
        # replaced, and only then is anything removed. If nft refuses, nothing was taken
        # away, so restoring the previous state never recreates a TAP a guest holds.
        #
        # The first apply (start-up reconciliation) and any apply after a failure read what
        # the kernel has; later ones diff against the state applied last, since mvirt-net
        # alone owns its TAPs, tables and rule priorities. A route dump costs ~1 ms per
        # route in pyroute2, which would make every change slower as NICs are added.
        known = self._applied
        self._applied = None  # until this apply has completed
        try:
            if known is None:
                self._forwarding()
                taps = self._add_taps(state)
                current_rules, current_routes = self.rules(), self.routes()
                current_taps = self.owned_taps()
            else:
                taps = self._add_new_taps(state, self._taps)
                current_rules, current_routes = set(known.rules), set(known.routes)
                current_taps = dict(self._taps)
            for rule in sorted(state.rules - current_rules):
                self._ip.rule("add", **_rule_args(rule))
            for route in sorted(state.routes - current_routes):
                self._ip.route("replace", **_route_args(route, taps))
        except NetlinkError as exc:
            raise DataPlaneError(f"netlink: {exc}") from None
        except OSError as exc:
            raise DataPlaneError(f"kernel: {exc}") from None
        nft_error: nftables.NftError | None = None
        try:
            nftables.apply(state)
        except nftables.NftError as exc:
            if not rollback:
                raise DataPlaneError(str(exc)) from None
            nft_error = exc
        try:
            for rule in sorted(current_rules - state.rules):
                self._ip.rule("del", **_rule_args(rule))
            wanted_keys = {_route_key(r) for r in state.routes}
            for route in sorted(current_routes - state.routes):
                if _route_key(route) not in wanted_keys:  # else replaced above
                    self._delete_route(route)
            for name, index in current_taps.items():
                if name not in taps:
                    log.info("removing stale TAP", extra={"tap": name})
                    self._ip.link("del", index=index)
        except NetlinkError as exc:
            raise DataPlaneError(f"netlink: {exc}") from None
        if nft_error is not None:
            raise DataPlaneError(str(nft_error))
        self._taps = taps
        self._applied = state

    def remove_all(self) -> None:
        """Removes everything mvirt-net owns (tests and uninstall)."""
        self.apply(
            DesiredState(
                taps=(), routes=frozenset(), rules=frozenset(), uplink=None, networks=(), nics=()
            )
        )
        nftables.delete_table()

    def _forwarding(self) -> None:
        _write_sysctl("net/ipv4/ip_forward", "1")
        _write_sysctl("net/ipv6/conf/all/forwarding", "1")

    def _create_tap(self, name: str) -> int:
        log.info("creating TAP", extra={"tap": name})
        self._ip.link("add", ifname=name, kind="tuntap", mode="tap")
        _write_sysctl(f"net/ipv6/conf/{name}/accept_ra", "0")
        (index,) = self._ip.link_lookup(ifname=name)
        return int(index)

    def _configure_tap(self, index: int, up: bool, present: set[tuple[str, int]]) -> None:
        if not up:
            self._ip.link("set", index=index, state="up")
        if (str(GATEWAY_V4), 32) not in present:
            self._ip.addr("add", index=index, address=str(GATEWAY_V4), prefixlen=32)
        if (str(GATEWAY_V6), 64) not in present:
            self._ip.addr(
                "add", index=index, address=str(GATEWAY_V6), prefixlen=64, flags=IFA_F_NODAD
            )

    def _add_new_taps(self, state: DesiredState, known: dict[str, int]) -> dict[str, int]:
        taps: dict[str, int] = {}
        for name in state.taps:
            if name in known:
                taps[name] = known[name]
            else:
                taps[name] = self._create_tap(name)
                self._configure_tap(taps[name], False, set())
        return taps

    def _add_taps(self, state: DesiredState) -> dict[str, int]:
        existing = self.owned_taps()
        for name in state.taps:
            if name not in existing:
                self._create_tap(name)
        # One dump each of links and addresses, so a change costs the same netlink calls
        # however many TAPs exist; only what is missing is changed.
        links = self._links()
        addresses: dict[int, set[tuple[str, int]]] = {}
        for msg in self._ip.get_addr():
            entry = (str(msg.get_attr("IFA_ADDRESS")), int(msg["prefixlen"]))
            addresses.setdefault(int(msg["index"]), set()).add(entry)
        taps: dict[str, int] = {}
        for name in state.taps:
            link = links[name]
            index = taps[name] = int(link["index"])
            up = bool(int(link["flags"]) & IFF_UP)
            self._configure_tap(index, up, addresses.get(index, set()))
        return taps

    def _delete_route(self, route: Route) -> None:
        args: dict[str, Any] = {
            "family": route.family,
            "table": route.table,
            "dst": route.dst,
            "dst_len": route.dst_len,
        }
        if not route.tap:
            args["type"] = "unreachable"
        try:
            self._ip.route("del", **args)
        except NetlinkError as exc:
            if exc.code != ESRCH:  # gone with its TAP already
                raise


def _route_key(route: Route) -> tuple[int, int, str, int]:
    """What identifies a route in its table (a replace overwrites the rest)."""
    return (route.family, route.table, route.dst, route.dst_len)


def _rule_args(rule: Rule) -> dict[str, Any]:
    args: dict[str, Any] = {"family": rule.family, "priority": rule.priority, "table": rule.table}
    if rule.iifname:
        args["iifname"] = rule.iifname
    if rule.dst:
        args["dst"] = rule.dst
        args["dst_len"] = rule.dst_len
    return args


def _route_args(route: Route, taps: dict[str, int]) -> dict[str, Any]:
    args: dict[str, Any] = {
        "family": route.family,
        "table": route.table,
        "dst": route.dst,
        "dst_len": route.dst_len,
    }
    if not route.tap:
        args["type"] = "unreachable"
        return args
    args["oif"] = taps[route.tap]
    if route.gateway:
        args["gateway"] = route.gateway
        args["flags"] = RTNH_F_ONLINK
    else:
        args["scope"] = SCOPE_LINK if route.family == socket.AF_INET else 0
    return args
