"""What router advertisements configure on one interface, and every lifetime of it (RFC 4861,
RFC 4862, RFC 8106).

With the kernel's `accept_ra` off, nothing expires unless pideisn expires it: the default
route (router lifetime), on-link prefix routes (prefix valid lifetime), SLAAC addresses (valid
lifetime, with the two-hour rule of RFC 4862 5.5.3 e) and RDNSS servers (their lifetime) each
get an expiry time here, all served by one loop timer. Each prefix option is applied on its
own: one that cannot be applied is logged and the others still are. The MTU option is applied
to the link.
"""

from __future__ import annotations

from mvirt.pideisn import ndp_codec
from mvirt.pideisn import netlink as nl
from mvirt.pideisn.console import log
from mvirt.pideisn.loop import Loop, Timer

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

INFINITE = 0xFFFFFFFF
TWO_HOURS = 7200
MIN_MTU = 1280  # RFC 8200 5: IPv6 never uses a smaller link MTU
DEFAULT_ROUTE_METRIC = 1024
EPSILON = 1e-6

ROUTER = "router"
ON_LINK = "on-link"
ADDRESS = "address"
RDNSS = "rdnss"


class RaConfig:
    """Applies RAs for one interface through rtnetlink and expires what they configured."""

    def __init__(
        self,
        loop: Loop,
        netlink: nl.Netlink,
        ifname: str,
        index: int,
        mac: bytes,
        *,
        on_change: Callable[[], None] | None = None,
        on_address: Callable[[str], None] | None = None,
    ) -> None:
        self.loop = loop
        self.netlink = netlink
        self.ifname = ifname
        self.index = index
        self.mac = mac
        self.on_change = on_change
        self.on_address = on_address
        # (kind, key) → absolute expiry time (float("inf") for an infinite lifetime)
        self.expires: dict[tuple[str, str], float] = {}
        self._timer: Timer | None = None

    # -- what is configured ----------------------------------------------------------------

    def _keys(self, kind: str) -> list[str]:
        return [key for k, key in self.expires if k == kind]

    @property
    def addresses(self) -> list[str]:
        """SLAAC addresses as `address/64`."""
        return [f"{a}/64" for a in self._keys(ADDRESS)]

    @property
    def routers(self) -> list[str]:
        """Default routers (link-local addresses)."""
        return self._keys(ROUTER)

    @property
    def on_link(self) -> list[str]:
        """On-link prefixes as `prefix/len`."""
        return self._keys(ON_LINK)

    @property
    def dns(self) -> list[str]:
        """RDNSS servers still within their lifetime."""
        return self._keys(RDNSS)

    def remaining(self, kind: str, key: str) -> float | None:
        """Seconds left for one item, or None when it is not configured."""
        when = self.expires.get((kind, key))
        return None if when is None else when - self.loop.clock()

    # -- applying --------------------------------------------------------------------------

    def apply(self, ra: ndp_codec.RouterAdvertisement, source: str) -> None:
        """Apply one valid RA; failures are logged per option, never raised."""
        dns_before = self.dns
        for info in ra.prefixes:
            try:
                self._apply_prefix(info)
            except (OSError, ValueError) as exc:
                log(f"{self.ifname}: prefix {info.prefix}/{info.prefixlen} not applied: {exc}")
        try:
            self._apply_router(source, ra.lifetime)
        except OSError as exc:
            log(f"{self.ifname}: IPv6 default route via {source} not applied: {exc}")
        for server in ra.dns:
            self._set(RDNSS, server, ra.dns_lifetime)
        if ra.mtu is not None:
            self._apply_mtu(ra.mtu)
        self._rearm()
        if self.dns != dns_before and self.on_change is not None:
            self.on_change()

    def _apply_prefix(self, info: ndp_codec.PrefixInfo) -> None:
        if info.prefix.lower().startswith("fe80:") or info.preferred > info.valid:
            return  # RFC 4862 5.5.3 b, c
        if info.flags & ndp_codec.PREFIX_ON_LINK:
            self._apply_on_link(info)
        if info.flags & ndp_codec.PREFIX_AUTONOMOUS and info.prefixlen == 64 and len(self.mac) == 6:
            self._apply_address(info)

    def _apply_on_link(self, info: ndp_codec.PrefixInfo) -> None:
        key = f"{info.prefix}/{info.prefixlen}"
        if info.valid == 0:
            if (ON_LINK, key) in self.expires:
                self._expire_item(ON_LINK, key)
            return
        self.netlink.add_route(info.prefix, info.prefixlen, self.index, protocol=nl.RTPROT_RA)
        self._set(ON_LINK, key, info.valid)

    def _apply_address(self, info: ndp_codec.PrefixInfo) -> None:
        address = ndp_codec.eui64_address(info.prefix, self.mac)
        remaining = self.remaining(ADDRESS, address)
        if remaining is None:
            if info.valid == 0:
                return  # RFC 4862 5.5.3 d: a new address with valid lifetime 0 is ignored
            valid = float(info.valid)
        else:
            valid = _two_hour_rule(info.valid, remaining)
        preferred = min(float(info.preferred), valid)
        self.netlink.add_address(
            self.index,
            address,
            64,
            valid=_kernel_lifetime(valid),
            preferred=_kernel_lifetime(preferred),
            # The on-link route is the L flag's business, with its own lifetime. Optimistic
            # (RFC 4429), as the kernel's own SLAAC makes it: a source while DAD runs. The
            # kernel drops the flag where optimistic DAD is off or DAD is over.
            flags=nl.IFA_F_NOPREFIXROUTE | nl.IFA_F_OPTIMISTIC,
        )
        self._set_seconds(ADDRESS, address, valid)
        if remaining is None:
            log(f"{self.ifname}: SLAAC {address}/64 (valid {info.valid}s)")
            if self.on_address is not None:
                self.on_address(address)

    def _apply_router(self, source: str, lifetime: int) -> None:
        if lifetime:
            self.netlink.add_route(
                "::",
                0,
                self.index,
                gateway=source,
                protocol=nl.RTPROT_RA,
                metric=DEFAULT_ROUTE_METRIC,
            )
            if (ROUTER, source) not in self.expires:
                log(f"{self.ifname}: IPv6 default route via {source} (lifetime {lifetime}s)")
            self._set(ROUTER, source, lifetime)
        elif (ROUTER, source) in self.expires:
            self._expire_item(ROUTER, source)

    def _apply_mtu(self, mtu: int) -> None:
        if mtu < MIN_MTU:
            log(f"{self.ifname}: router advertised MTU {mtu} below {MIN_MTU}, ignored")
            return
        try:
            self.netlink.set_mtu(self.index, mtu)
        except OSError as exc:
            log(f"{self.ifname}: router advertised MTU {mtu} not applied: {exc}")

    # -- lifetimes -------------------------------------------------------------------------

    def _set(self, kind: str, key: str, lifetime: int) -> None:
        if lifetime == 0:
            if (kind, key) in self.expires:
                self._expire_item(kind, key)
            return
        self._set_seconds(kind, key, float("inf") if lifetime == INFINITE else float(lifetime))

    def _set_seconds(self, kind: str, key: str, seconds: float) -> None:
        self.expires[(kind, key)] = self.loop.clock() + seconds

    def forget_address(self, address: str) -> None:
        """Drop an address (e.g. one that failed DAD) from what is tracked."""
        if (ADDRESS, address) in self.expires:
            self._expire_item(ADDRESS, address)
            self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        finite = [when for when in self.expires.values() if when != float("inf")]
        if finite:
            self._timer = self.loop.call_at(min(finite), self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = self.loop.clock()
        due = [item for item, when in self.expires.items() if when <= now + EPSILON]
        for kind, key in due:
            log(f"{self.ifname}: {kind} {key} expired")
            self._expire_item(kind, key)
        self._rearm()
        if any(kind == RDNSS for kind, _key in due) and self.on_change is not None:
            self.on_change()

    def _expire_item(self, kind: str, key: str) -> None:
        """Remove one item from the kernel (as far as it is still there) and from the table."""
        self.expires.pop((kind, key), None)
        try:
            if kind == ROUTER:
                self.netlink.delete_route(
                    "::", 0, self.index, gateway=key, metric=DEFAULT_ROUTE_METRIC
                )
            elif kind == ON_LINK:
                prefix, length = key.split("/")
                self.netlink.delete_route(prefix, int(length), self.index)
            elif kind == ADDRESS:
                self.netlink.delete_address(self.index, key, 64)
        except OSError:
            pass  # already gone (the kernel's own address lifetime may have been first)

    def stop(self) -> None:
        """Stop the timer (the configuration stays as it is)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _two_hour_rule(received: int, remaining: float) -> float:
    """RFC 4862 5.5.3 e: a valid lifetime for an address that already exists."""
    if received == INFINITE:
        return float("inf")
    if received > TWO_HOURS or received > remaining:
        return float(received)
    if remaining <= TWO_HOURS:
        return remaining
    return float(TWO_HOURS)


def _kernel_lifetime(seconds: float) -> int:
    if seconds == float("inf"):
        return INFINITE
    return max(1, min(int(seconds + 0.5), INFINITE - 1))
