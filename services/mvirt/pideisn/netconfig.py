"""Network configuration of every interface: links up, DHCPv4, SLAAC and DHCPv6, applied
through rtnetlink, DNS collected into resolv.conf and delegated prefixes into the pool.
"""

from __future__ import annotations

import _socket
import errno
import os

from mvirt.pideisn import dhcp4_codec, dhcp6, ndp_codec
from mvirt.pideisn import netlink as nl
from mvirt.pideisn.console import log
from mvirt.pideisn.dhcp4 import Dhcp4Client, Dhcp4Socket
from mvirt.pideisn.dhcp6 import Dhcp6Client, Dhcp6Lease, Dhcp6Socket
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.prefix_pool import PrefixPool
from mvirt.pideisn.ra_config import RaConfig
from mvirt.pideisn.resolv import write_resolv_conf
from mvirt.pideisn.slaac import Icmp6Socket, SlaacClient, send_unspecified_solicitation

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

WAIT_DHCP4 = "dhcp4"
WAIT_RA = "ra"
WAIT_DHCP6 = "dhcp6"
LINK_LOCAL_POLL = 0.05
LINK_LOCAL_TIMEOUT = 10.0
DAD_POLL = 0.1
DAD_TIMEOUT = 10.0


def _same_subnet(a: str, b: str, prefixlen: int) -> bool:
    ra = int.from_bytes(_socket.inet_aton(a), "big")
    rb = int.from_bytes(_socket.inet_aton(b), "big")
    shift = 32 - prefixlen
    return ra >> shift == rb >> shift


def _write_sysctl(path: str, value: str) -> bool:
    """Write a sysctl; False when there is no such file (or it cannot be written)."""
    try:
        with open(path, "w") as out:
            out.write(value)
    except OSError:
        return False  # an interface or kernel without IPv6 (or that option): nothing to set
    return True


class Interface:
    """Everything pideisn runs and knows for one NIC."""

    def __init__(self, link: nl.Link) -> None:
        self.link = link
        self.dhcp4: Dhcp4Client | None = None
        self.slaac: SlaacClient | None = None
        self.dhcp6: Dhcp6Client | None = None
        self.sockets: list[Dhcp4Socket | Icmp6Socket | Dhcp6Socket] = []
        self.lease4: dhcp4_codec.Lease | None = None
        self.routes4: list[tuple[str, int, str | None]] = []
        self.lease6: Dhcp6Lease | None = None
        self.info6: tuple[list[str], list[str]] = ([], [])  # stateless DHCPv6 DNS, domains
        self.ra: ndp_codec.RouterAdvertisement | None = None
        self.ra_config: RaConfig | None = None
        self.solicit_started: float | None = None
        self.link_local_waited = 0.0

    @property
    def name(self) -> str:
        """The interface name."""
        return self.link.name

    def addresses(self) -> list[str]:
        """Configured global addresses as `address/prefixlen`."""
        out = []
        if self.lease4 is not None:
            out.append(f"{self.lease4.address}/{self.lease4.prefixlen}")
        if self.ra_config is not None:
            out += self.ra_config.addresses
        if self.lease6 is not None:
            out += [f"{a.address}/128" for a in self.lease6.addresses]
        return out


class NetworkConfig:
    """Configures the given interfaces (all NICs by default) and reports when done."""

    def __init__(
        self,
        loop: Loop,
        netlink: nl.Netlink,
        *,
        resolv_conf: str | None = "/etc/resolv.conf",
        prefix_pool: PrefixPool | None = None,
        on_hostname: Callable[[str], None] | None = None,
        ipv4: bool = True,
        ipv6: bool = True,
        dhcp6: bool = True,
        waits: frozenset[str] = frozenset({WAIT_DHCP4, WAIT_RA}),
        state_dir: str | None = None,
        router_grace: float | None = None,
    ) -> None:
        self.loop = loop
        self.netlink = netlink
        self.resolv_conf = resolv_conf
        self.pool = prefix_pool or PrefixPool()
        self.on_hostname = on_hostname
        self.ipv4 = ipv4
        self.ipv6 = ipv6 and os.path.exists("/proc/sys/net/ipv6")
        self.use_dhcp6 = dhcp6
        self.waits = waits
        self.state_dir = state_dir
        # With a grace period, an interface whose DHCPv4 lease is in does not wait for an RA
        # longer than this after its first solicitation (routers answer within 0.5 s, RFC
        # 4861 MAX_RA_DELAY_TIME); the solicitations go on in the background.
        self.router_grace = router_grace
        self._resolv_written = False  # once written, expired servers are removed from it
        self.interfaces: list[Interface] = []

    # -- start-up --------------------------------------------------------------------------

    def start(self, names: list[str] | None = None) -> None:
        """Bring lo and the NICs (all, or those named) up and start their clients."""
        links = self.netlink.links()
        for link in links:
            if link.is_loopback:
                try:
                    self.netlink.set_up(link.index)
                except OSError as exc:
                    log(f"bringing {link.name} up failed: {exc}")
        for link in links:
            if link.is_loopback or link.kind != nl.ARPHRD_ETHER:
                continue
            if names is not None and link.name not in names:
                continue
            iface = Interface(link)
            self.interfaces.append(iface)
            try:
                self._start_interface(iface)
            except Exception as exc:
                log(f"configuring {link.name} failed: {exc!r}")
        missing = set(names or ()) - {i.name for i in self.interfaces}
        if missing:
            log(f"no such Ethernet interface: {', '.join(sorted(missing))}")
        if not self.interfaces:
            log("no network interface found")

    def _start_interface(self, iface: Interface) -> None:
        name = iface.name
        if self.ipv6:
            # Router advertisements are handled here, not by the kernel, so that addresses,
            # routes and DNS servers from RAs are applied (and logged) like DHCP's.
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/accept_ra", "0")
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/autoconf", "0")
            # The kernel waits a random 0 to router_solicitation_delay (1 s) before starting
            # DAD on an address that is not optimistic, a precaution for many hosts booting at
            # once on one link (RFC 4862 5.4.2); a VM's virtual NIC is not that, and SLAAC and
            # DHCPv6 addresses wait for DAD. pideisn sends its own solicitations, so the
            # kernel's RS delay is otherwise unused.
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/router_solicitation_delay", "0")
            # Optimistic DAD (RFC 4429): the link-local address is a usable source while DAD
            # runs, so DHCPv6 need not wait for DAD to end. Kernels without
            # CONFIG_IPV6_OPTIMISTIC_DAD lack the files.
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/optimistic_dad", "1")
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/use_optimistic", "1")
        self.netlink.set_up(iface.link.index)
        log(f"{name}: link up (mac {iface.link.mac.hex(':')})")
        if self.ipv4:
            self._start_dhcp4(iface)
        if self.ipv6:
            self._receive_multicast6(iface)
            # Router solicitation starts at once, from `::` until there is a link-local
            # address (RFC 4861 6.3.7); DHCPv6 once that address is usable.
            try:
                self._start_slaac(iface)
            except OSError as exc:
                log(f"{name}: router solicitation unavailable: {exc}")
            self.loop.call_later(0, lambda: self._wait_link_local(iface))

    def _receive_multicast6(self, iface: Interface) -> None:
        # The kernel adds its route for multicast only when IPv6 on the link becomes ready,
        # and until then drops multicast to the host: the RA answering a solicitation too. A
        # NIC whose carrier came up while it was down becomes ready when the kernel's link
        # watcher next runs, up to a second later (net/core/link_watch.c), well after the
        # link is up and the first RS out. The same route added now lets that RA in.
        try:
            self.netlink.add_multicast_route6(iface.link.index)
        except OSError as exc:
            log(f"{iface.name}: cannot add the IPv6 multicast route: {exc}")

    def _start_dhcp4(self, iface: Interface) -> None:
        sock = Dhcp4Socket(iface.name)
        iface.sockets.append(sock)

        def bound(lease: dhcp4_codec.Lease) -> None:
            self._apply_lease4(iface, lease)
            if iface.lease4 is lease:
                self._remember_address(iface, lease.address)

        def expired(lease: dhcp4_codec.Lease) -> None:
            self._drop_lease4(iface, lease)

        client = Dhcp4Client(
            self.loop,
            iface.name,
            iface.link.mac,
            send=sock.send,
            on_bound=bound,
            on_expired=expired,
            previous_address=self._remembered_address(iface),
        )
        iface.dhcp4 = client

        def readable() -> None:
            for packet in sock.receive():
                client.handle_packet(packet)

        self.loop.add_reader(sock.fileno(), readable)
        client.start()

    def _state_file(self, iface: Interface) -> str | None:
        # Kernel interface names never contain "/" or NUL; anything odd gets no state file.
        name = iface.name
        if self.state_dir is None or not name or "/" in name or name.startswith("."):
            return None
        return os.path.join(self.state_dir, f"dhcp4-{name}")

    def _remembered_address(self, iface: Interface) -> str | None:
        """The address of the previous boot's lease, when the image keeps state (INIT-REBOOT)."""
        path = self._state_file(iface)
        if path is None:
            return None
        try:
            with open(path) as source:
                address = source.read(64).strip()
            _socket.inet_aton(address)
        except (OSError, ValueError):
            return None
        return address if address.count(".") == 3 else None

    def _remember_address(self, iface: Interface, address: str) -> None:
        path = self._state_file(iface)
        if path is None:
            return
        try:
            tmp = path + ".tmp"
            with open(tmp, "w") as out:
                out.write(address + "\n")
            os.replace(tmp, path)
        except OSError as exc:
            log(f"{iface.name}: cannot remember the DHCPv4 address in {path}: {exc}")

    def _wait_link_local(self, iface: Interface) -> None:
        # Until DAD has finished, the link-local address cannot be a source (unless it is
        # optimistic, RFC 4429): DHCPv6 would fail, so poll briefly for it.
        ready = [
            a
            for a in self.netlink.addresses(iface.link.index)
            if a.family == _socket.AF_INET6
            and a.address.startswith("fe80:")
            and not a.flags & nl.IFA_F_DADFAILED
            and (a.flags & nl.IFA_F_OPTIMISTIC or not a.flags & nl.IFA_F_TENTATIVE)
        ]
        if not ready:
            iface.link_local_waited += LINK_LOCAL_POLL
            if iface.link_local_waited > LINK_LOCAL_TIMEOUT:
                log(f"{iface.name}: no usable IPv6 link-local address, DHCPv6 skipped")
                if iface.ra is None:
                    iface.ra = ndp_codec.RouterAdvertisement()
                return
            self.loop.call_later(LINK_LOCAL_POLL, lambda: self._wait_link_local(iface))
            return
        if self.use_dhcp6:
            self._start_dhcp6(iface)

    def _start_slaac(self, iface: Interface) -> None:
        sock = Icmp6Socket(iface.name, iface.link.index)
        iface.sockets.append(sock)
        iface.solicit_started = self.loop.clock()
        iface.ra_config = RaConfig(
            self.loop,
            self.netlink,
            iface.name,
            iface.link.index,
            iface.link.mac,
            on_change=self._write_resolv_conf,
            on_address=lambda address: self._watch_dad(iface, address, "SLAAC"),
        )

        def advertised(ra: ndp_codec.RouterAdvertisement, source: str) -> None:
            self._apply_ra(iface, ra, source)

        def send(packet: bytes, destination: str) -> None:
            try:
                sock.send(packet, destination)
            except OSError as exc:
                # No usable source yet: no link-local address at all (no route, ENETUNREACH)
                # or one still in DAD (EADDRNOTAVAIL).
                if exc.errno not in (errno.EADDRNOTAVAIL, errno.ENETUNREACH):
                    raise
                send_unspecified_solicitation(iface.name)

        client = SlaacClient(self.loop, iface.name, iface.link.mac, send, advertised)
        iface.slaac = client

        def readable() -> None:
            for data, source, hop_limit in sock.receive():
                client.handle_packet(data, source, hop_limit)

        self.loop.add_reader(sock.fileno(), readable)
        client.start()

    def _start_dhcp6(self, iface: Interface) -> None:
        sock = Dhcp6Socket(iface.name, iface.link.index)
        iface.sockets.append(sock)

        def bound(lease: Dhcp6Lease) -> None:
            self._apply_lease6(iface, lease)

        def expired(lease: Dhcp6Lease) -> None:
            self._drop_lease6(iface, lease)

        def information(dns: list[str], domains: list[str]) -> None:
            iface.info6 = (dns, domains)
            self._write_resolv_conf()

        client = Dhcp6Client(
            self.loop,
            iface.name,
            iface.link.mac,
            send=sock.send,
            on_bound=bound,
            on_expired=expired,
            on_information=information,
        )
        iface.dhcp6 = client

        def readable() -> None:
            for packet in sock.receive():
                client.handle_packet(packet)

        self.loop.add_reader(sock.fileno(), readable)
        client.start()

    # -- progress --------------------------------------------------------------------------

    def interface_done(self, iface: Interface) -> bool:
        """True when everything this interface waits for has arrived."""
        if self.ipv4 and WAIT_DHCP4 in self.waits and iface.lease4 is None:
            return False
        if not self.ipv6:
            return True
        if WAIT_RA in self.waits and iface.ra is None:
            return self.no_router(iface)
        managed = iface.ra is not None and bool(iface.ra.flags & ndp_codec.FLAG_MANAGED)
        wants_dhcp6 = WAIT_DHCP6 in self.waits or managed
        return not (self.use_dhcp6 and wants_dhcp6 and iface.lease6 is None)

    def no_router(self, iface: Interface) -> bool:
        """True when no router answered within the grace period (and DHCPv4 is done)."""
        started = iface.solicit_started
        if self.router_grace is None or started is None or iface.ra is not None:
            return False
        if self.ipv4 and iface.lease4 is None:
            return False
        return self.loop.clock() - started >= self.router_grace

    def configured(self) -> bool:
        """True when every interface is done."""
        return all(self.interface_done(i) for i in self.interfaces)

    def summary(self) -> str:
        """`eth0 10.0.2.15/24 fec0::…/64` for every interface with an address."""
        parts = []
        for iface in self.interfaces:
            addresses = iface.addresses()
            if addresses:
                parts.append(" ".join([iface.name, *addresses]))
        return " ".join(parts)

    def report_pending(self) -> None:
        """Log what did not arrive in time (the boot carries on without it)."""
        for iface in self.interfaces:
            if self.ipv4 and iface.lease4 is None:
                log(f"{iface.name}: no DHCPv4 lease yet, continuing (the client keeps trying)")
            if self.ipv6 and iface.ra is None and not self.no_router(iface):
                log(f"{iface.name}: no router advertisement yet, continuing")
            if self.use_dhcp6 and self.ipv6 and iface.lease6 is None and iface.dhcp6 is not None:
                log(f"{iface.name}: no DHCPv6 lease yet, continuing")

    def close(self, release: bool = False) -> None:
        """Stop clients and close sockets; with `release`, DHCPv4 leases go back to the server."""
        for iface in self.interfaces:
            if release and iface.dhcp4 is not None:
                iface.dhcp4.release()
            for client in (iface.dhcp4, iface.slaac, iface.dhcp6, iface.ra_config):
                if client is not None:
                    client.stop()
            for sock in iface.sockets:
                self.loop.remove_reader(sock.fileno())
                sock.close()
            iface.sockets = []

    # -- applying --------------------------------------------------------------------------

    def _apply_lease4(self, iface: Interface, lease: dhcp4_codec.Lease) -> None:
        old = iface.lease4
        if old is not None and (old.address, old.prefixlen) != (lease.address, lease.prefixlen):
            self._drop_lease4(iface, old)
        try:
            self._configure_lease4(iface, lease)
        except OSError as exc:
            # Never leave half a lease behind: take back what was applied, let DHCP retry.
            log(f"{iface.name}: applying DHCPv4 {lease.address} failed: {exc}")
            self._drop_lease4(iface, lease)
            client = iface.dhcp4
            if client is not None:
                client.refuse("lease could not be applied")
            return
        if lease.mtu is not None:
            try:
                self.netlink.set_mtu(iface.link.index, lease.mtu)
                log(f"{iface.name}: MTU {lease.mtu} (DHCPv4)")
            except OSError as exc:
                log(f"{iface.name}: setting MTU {lease.mtu} failed: {exc}")
        iface.lease4 = lease
        via = f" via {lease.routers[0]}" if lease.routers else ""
        log(
            f"{iface.name}: DHCPv4 {lease.address}/{lease.prefixlen}{via}"
            f" dns {','.join(lease.dns) or '-'} lease {lease.lease_time}s"
            + (f" routes {len(lease.routes)}" if lease.routes else "")
        )
        if lease.hostname and self.on_hostname is not None:
            self.on_hostname(lease.hostname)
        self._write_resolv_conf()

    def _configure_lease4(self, iface: Interface, lease: dhcp4_codec.Lease) -> None:
        index = iface.link.index
        mask = (1 << (32 - lease.prefixlen)) - 1
        raw = int.from_bytes(_socket.inet_aton(lease.address), "big")
        broadcast = (
            _socket.inet_ntoa((raw | mask).to_bytes(4, "big")) if lease.prefixlen < 31 else None
        )
        life = lease.lease_time
        self.netlink.add_address(
            index, lease.address, lease.prefixlen, broadcast=broadcast, valid=life, preferred=life
        )
        routes: list[tuple[str, int, str | None]] = []
        gateway: str | None
        if lease.routes:
            # RFC 3442: with classless routes present, the router option is ignored.
            for dst, length, gateway in lease.routes:
                routes.append((dst, length, None if gateway == "0.0.0.0" else gateway))
        elif lease.routers:
            routes.append(("0.0.0.0", 0, lease.routers[0]))
        for dst, length, gateway in routes:
            if gateway and not _same_subnet(gateway, lease.address, lease.prefixlen):
                # A /32 (or any gateway outside the subnet) needs an on-link route to it first.
                self.netlink.add_route(gateway, 32, index, protocol=nl.RTPROT_DHCP)
                if (gateway, 32, None) not in routes:
                    routes_on_link = (gateway, 32, None)
                    if routes_on_link not in iface.routes4:
                        iface.routes4.append(routes_on_link)
            self.netlink.add_route(dst, length, index, gateway=gateway, protocol=nl.RTPROT_DHCP)
            if (dst, length, gateway) not in iface.routes4:
                iface.routes4.append((dst, length, gateway))

    def _drop_lease4(self, iface: Interface, lease: dhcp4_codec.Lease) -> None:
        for dst, length, gateway in reversed(iface.routes4):
            try:
                self.netlink.delete_route(dst, length, iface.link.index, gateway=gateway)
            except OSError:
                pass
        iface.routes4 = []
        try:
            self.netlink.delete_address(iface.link.index, lease.address, lease.prefixlen)
        except OSError:
            pass
        iface.lease4 = None
        self._write_resolv_conf()

    def _apply_ra(self, iface: Interface, ra: ndp_codec.RouterAdvertisement, source: str) -> None:
        first = iface.ra is None
        # Any valid RA counts for the boot's wait, whatever its options turn out to do.
        iface.ra = ra
        if iface.ra_config is not None:
            iface.ra_config.apply(ra, source)
        if first and ra.flags & ndp_codec.FLAG_MANAGED:
            log(f"{iface.name}: router says addresses are managed by DHCPv6")
        self._follow_ra_flags(iface, ra)
        self._write_resolv_conf()

    def _watch_dad(self, iface: Interface, address: str, origin: str, waited: float = 0.0) -> None:
        """Follow a new address through DAD; a duplicate is reported and removed."""
        try:
            found = [a for a in self.netlink.addresses(iface.link.index) if a.address == address]
        except OSError:
            return
        # The kernel keeps a duplicate address flagged "dadfailed" when it is permanent, but
        # deletes one with a finite lifetime: gone while still ours means DAD failed too.
        if not found:
            if self._still_ours(iface, address, origin):
                log(f"{iface.name}: {origin} address {address} failed DAD (in use by another host)")
                self._drop_duplicate(iface, address, origin)
            return
        flags = found[0].flags
        if flags & nl.IFA_F_DADFAILED:
            log(f"{iface.name}: {origin} address {address} failed DAD (in use by another host)")
            self._drop_duplicate(iface, address, origin)
            return
        if flags & nl.IFA_F_TENTATIVE and waited < DAD_TIMEOUT:
            self.loop.call_later(
                DAD_POLL, lambda: self._watch_dad(iface, address, origin, waited + DAD_POLL)
            )

    def _still_ours(self, iface: Interface, address: str, origin: str) -> bool:
        if origin == "SLAAC":
            tracked = iface.ra_config
            return tracked is not None and f"{address}/64" in tracked.addresses
        lease = iface.lease6
        return lease is not None and any(a.address == address for a in lease.addresses)

    def _watch_dad_later(self, iface: Interface, address: str, origin: str) -> None:
        self.loop.call_later(0, lambda: self._watch_dad(iface, address, origin))

    def _drop_duplicate(self, iface: Interface, address: str, origin: str) -> None:
        if origin == "SLAAC" and iface.ra_config is not None:
            iface.ra_config.forget_address(address)
            return
        lease = iface.lease6
        if lease is not None:
            lease.addresses = [a for a in lease.addresses if a.address != address]
        try:
            self.netlink.delete_address(iface.link.index, address, 128)
        except OSError:
            pass

    def _follow_ra_flags(self, iface: Interface, ra: ndp_codec.RouterAdvertisement) -> None:
        """M set: stateful DHCPv6; only O set: Information-Request (RFC 8415 18.2.6)."""
        client = iface.dhcp6
        if client is None:
            return
        managed = bool(ra.flags & ndp_codec.FLAG_MANAGED)
        other = bool(ra.flags & ndp_codec.FLAG_OTHER)
        if not managed and other and client.state == dhcp6.SOLICITING:
            log(f"{iface.name}: router sets only the O flag, asking DHCPv6 for information")
            client.inform()
        elif managed and client.state in (dhcp6.INFORMING, dhcp6.INFORMED):
            client.start()

    def _apply_lease6(self, iface: Interface, lease: Dhcp6Lease) -> None:
        index = iface.link.index
        old = iface.lease6
        if old is not None:
            kept = {a.address for a in lease.addresses}
            for addr in old.addresses:
                if addr.address not in kept:
                    self.netlink.delete_address(index, addr.address, 128)
            kept_prefixes = {(p.prefix, p.prefixlen) for p in lease.prefixes}
            for pfx in old.prefixes:
                if (pfx.prefix, pfx.prefixlen) not in kept_prefixes:
                    self.pool.remove(pfx.prefix, pfx.prefixlen)
        known = {a.address for a in old.addresses} if old is not None else set()
        for addr in lease.addresses:
            self.netlink.add_address(
                index, addr.address, 128, valid=addr.valid, preferred=addr.preferred
            )
            if addr.address not in known:
                self._watch_dad_later(iface, addr.address, "DHCPv6")
        for pfx in lease.prefixes:
            self.pool.add(pfx.prefix, pfx.prefixlen, pfx.valid, pfx.preferred)
        iface.lease6 = lease
        granted = [f"{a.address}/128" for a in lease.addresses]
        granted += [f"prefix {p.prefix}/{p.prefixlen}" for p in lease.prefixes]
        log(f"{iface.name}: DHCPv6 {' '.join(granted)} dns {','.join(lease.dns) or '-'}")
        self._write_resolv_conf()

    def _drop_lease6(self, iface: Interface, lease: Dhcp6Lease) -> None:
        for addr in lease.addresses:
            try:
                self.netlink.delete_address(iface.link.index, addr.address, 128)
            except OSError:
                pass
        for pfx in lease.prefixes:
            self.pool.remove(pfx.prefix, pfx.prefixlen)
        iface.lease6 = None
        self._write_resolv_conf()

    def _write_resolv_conf(self) -> None:
        if self.resolv_conf is None:
            return
        servers: list[str] = []
        domains: list[str] = []
        for iface in self.interfaces:
            if iface.lease4 is not None:
                servers += iface.lease4.dns
                if iface.lease4.domain:
                    domains.append(iface.lease4.domain)
            if iface.lease6 is not None:
                servers += iface.lease6.dns
                domains += iface.lease6.domains
            servers += iface.info6[0]
            domains += iface.info6[1]
            if iface.ra_config is not None:
                servers += iface.ra_config.dns
        unique = list(dict.fromkeys(servers))
        try:
            written = write_resolv_conf(
                self.resolv_conf,
                unique,
                list(dict.fromkeys(domains)),
                allow_empty=self._resolv_written,
            )
            self._resolv_written = self._resolv_written or written
        except OSError as exc:
            log(f"writing {self.resolv_conf} failed: {exc}")
