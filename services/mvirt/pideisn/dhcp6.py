"""DHCPv6 client (RFC 8415): solicit, request, renew at T1, rebind at T2, for one IA_NA and one
IA_PD, or stateless Information-Request when the router only sets the O flag. Results go to
callbacks; netconfig applies addresses and keeps delegated prefixes.

Timing follows RFC 8415 exactly: lease times count from the Reply; Advertise messages are
collected for the first retransmission time (unless one has preference 255) and the most
preferred wins; Renew retransmissions end at T2 and Rebind ones at the end of the valid
lifetime, where expiry fires on its own timer whatever state the client is in.
"""

from __future__ import annotations

import _socket
import struct

from mvirt.pideisn import dhcp6_codec as codec
from mvirt.pideisn.console import log
from mvirt.pideisn.entropy import jitter, random_bytes
from mvirt.pideisn.loop import Loop, Timer
from mvirt.pideisn.prefix_pool import normal_prefix

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ALL_SERVERS = "ff02::1:2"
# RFC 8415 7.6 transmission parameters (seconds).
SOL_TIMEOUT = 1.0
SOL_MAX_RT = 3600.0
REQ_TIMEOUT = 1.0
REQ_MAX_RT = 30.0
REQ_MAX_RC = 10
REN_TIMEOUT = 10.0
REN_MAX_RT = 600.0
REB_TIMEOUT = 10.0
REB_MAX_RT = 600.0
INF_TIMEOUT = 1.0
INF_MAX_RT = 3600.0
IRT_DEFAULT = 86400.0
IRT_MINIMUM = 600.0
MAX_RT_RANGE = (60, 86400)  # SOL_MAX_RT / INF_MAX_RT options outside are ignored (21.24)
INFINITE = 0xFFFFFFFF
IAID = 1
EPSILON = 1e-6

INIT = "init"
SOLICITING = "soliciting"
REQUESTING = "requesting"
BOUND = "bound"
RENEWING = "renewing"
REBINDING = "rebinding"
INFORMING = "informing"
INFORMED = "informed"


class Dhcp6Lease:
    """What a REPLY granted: addresses, delegated prefixes, DNS, and the timers.

    Inconsistent parts are left out (RFC 8415 21.4, 21.6, 21.22): an IA for another IAID, an IA
    with T1 > T2, an address or prefix whose preferred lifetime exceeds its valid one.
    Delegated prefixes are kept in normal form (host bits cleared).
    """

    __slots__ = (
        "addresses",
        "dns",
        "domains",
        "no_binding",
        "prefixes",
        "server_id",
        "t1",
        "t2",
        "valid",
    )

    def __init__(self, reply: codec.Message) -> None:
        self.server_id = reply.get(codec.OPT_SERVERID) or b""
        self.addresses: list[codec.IaAddress] = []
        self.prefixes: list[codec.IaPrefix] = []
        self.no_binding = False
        t1s: list[int] = []
        t2s: list[int] = []
        for ia in reply.ias():
            if ia.iaid != IAID or (ia.t1 and ia.t2 and ia.t1 > ia.t2):
                continue
            if ia.status == codec.STATUS_NO_BINDING:
                self.no_binding = True
            if ia.status != codec.STATUS_SUCCESS:
                continue
            usable_addresses = [a for a in ia.addresses if a.valid > 0 and a.preferred <= a.valid]
            usable_prefixes = [
                codec.IaPrefix(
                    normal_prefix(p.prefix, p.prefixlen), p.prefixlen, p.preferred, p.valid
                )
                for p in ia.prefixes
                if p.valid > 0 and p.preferred <= p.valid and 0 < p.prefixlen <= 128
            ]
            self.addresses += usable_addresses
            self.prefixes += usable_prefixes
            if usable_addresses or usable_prefixes:
                if ia.t1:
                    t1s.append(ia.t1)
                if ia.t2:
                    t2s.append(ia.t2)
        lifetimes = [a.valid for a in self.addresses] + [p.valid for p in self.prefixes]
        preferred = [a.preferred for a in self.addresses] + [p.preferred for p in self.prefixes]
        self.valid = min(lifetimes) if lifetimes else 0
        shortest = min(preferred) if preferred else 0
        # T1/T2 of 0 leave the choice to the client (RFC 8415 21.4): 0.5 and 0.8 of preferred.
        self.t1 = min(t1s) if t1s else shortest // 2
        self.t2 = min(t2s) if t2s else shortest * 4 // 5
        self.t2 = max(self.t2, self.t1)
        self.dns = reply.dns_servers()
        self.domains = reply.domains()

    @property
    def empty(self) -> bool:
        """True when nothing usable was granted."""
        return not self.addresses and not self.prefixes

    def __repr__(self) -> str:
        return f"Dhcp6Lease({self.addresses}, {self.prefixes})"


def _preference(message: codec.Message) -> int:
    value = message.get(codec.OPT_PREFERENCE)
    return value[0] if value is not None and len(value) == 1 else 0


def _max_rt(message: codec.Message, code: int) -> float | None:
    value = message.get(code)
    if value is None or len(value) != 4:
        return None
    seconds = int.from_bytes(value, "big")
    return float(seconds) if MAX_RT_RANGE[0] <= seconds <= MAX_RT_RANGE[1] else None


class Dhcp6Client:
    """One interface's DHCPv6 client asking for an address and (optionally) a prefix."""

    def __init__(
        self,
        loop: Loop,
        ifname: str,
        mac: bytes,
        *,
        send: Callable[[bytes, str], None],
        on_bound: Callable[[Dhcp6Lease], None],
        on_expired: Callable[[Dhcp6Lease], None],
        on_information: Callable[[list[str], list[str]], None] | None = None,
        want_address: bool = True,
        want_prefix: bool = True,
    ) -> None:
        self.loop = loop
        self.ifname = ifname
        self.duid = codec.duid_ll(mac)
        self.send = send
        self.on_bound = on_bound
        self.on_expired = on_expired
        self.on_information = on_information
        self.want_address = want_address
        self.want_prefix = want_prefix
        self.state = INIT
        self.lease: Dhcp6Lease | None = None
        self.xid = 0
        self.sol_max_rt = SOL_MAX_RT
        self.inf_max_rt = INF_MAX_RT
        self._advertises: list[tuple[int, codec.Message]] = []
        self._collect_until = 0.0
        self._server_id = b""
        self._request_ias: list[tuple[int, bytes]] = []
        self._timer: Timer | None = None
        self._expiry: Timer | None = None
        self._rt = SOL_TIMEOUT
        self._tries = 0
        self._started = 0.0
        self._bound_at = 0.0

    # -- driving ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin with a SOLICIT."""
        self._new_transaction()
        self.state = SOLICITING
        self._advertises = []
        # RFC 8415 18.2.1: the first RT of a Solicit is strictly greater than SOL_TIMEOUT, and
        # Advertise messages are collected until it has passed.
        first = SOL_TIMEOUT * (1 + 0.05 + jitter(0.05))
        self._collect_until = self._started + first
        self._rt = first
        self._send_solicit(first=True)

    def inform(self) -> None:
        """Stateless DHCPv6: ask only for configuration (DNS), e.g. when the RA sets only O."""
        self._cancel()
        self._new_transaction()
        self.state = INFORMING
        self._rt = INF_TIMEOUT
        self._send_information_request()

    def stop(self) -> None:
        """Stop all timers."""
        self._cancel()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.state = INIT

    def _new_transaction(self) -> None:
        self.xid = int.from_bytes(random_bytes(3), "big")
        self._started = self.loop.clock()

    def _requested_ias(self) -> list[tuple[int, bytes]]:
        ias = []
        if self.want_address:
            ias.append((codec.OPT_IA_NA, codec.IdentityAssociation(codec.OPT_IA_NA, IAID).encode()))
        if self.want_prefix:
            ias.append((codec.OPT_IA_PD, codec.IdentityAssociation(codec.OPT_IA_PD, IAID).encode()))
        return ias

    def _message(self, kind: int, extra: list[tuple[int, bytes]]) -> bytes:
        elapsed = min(int((self.loop.clock() - self._started) * 100), 0xFFFF)
        oro: tuple[int, ...]
        if kind == codec.INFORMATION_REQUEST:
            oro = (codec.OPT_DNS_SERVERS, codec.OPT_DOMAIN_LIST)
            oro += (codec.OPT_INFORMATION_REFRESH_TIME, codec.OPT_INF_MAX_RT)
        else:
            oro = (codec.OPT_DNS_SERVERS, codec.OPT_DOMAIN_LIST, codec.OPT_SOL_MAX_RT)
        options = [
            (codec.OPT_CLIENTID, self.duid),
            (codec.OPT_ELAPSED_TIME, struct.pack("!H", elapsed)),
            (codec.OPT_ORO, struct.pack(f"!{len(oro)}H", *oro)),
            *extra,
        ]
        return codec.Message(kind, self.xid, options).encode()

    def _transmit(self, packet: bytes) -> None:
        try:
            self.send(packet, ALL_SERVERS)
        except OSError as exc:
            log(f"{self.ifname}: DHCPv6 send failed: {exc}")

    def _next_rt(self, max_rt: float) -> float:
        # RFC 8415 15: RT = 2*RTprev + RAND*RTprev, capped at MRT (+ RAND*MRT).
        rt = self._rt
        following = 2 * rt + jitter(0.1 * rt)
        if following > max_rt:
            following = max_rt + jitter(0.1 * max_rt)
        self._rt = following
        return rt

    # -- solicit / request -----------------------------------------------------------------

    def _send_solicit(self, first: bool = False) -> None:
        if not first and self._advertises:
            self._choose_advertise()
            return
        self._transmit(self._message(codec.SOLICIT, self._requested_ias()))
        self._schedule(self._next_rt(self.sol_max_rt), self._send_solicit)

    def _choose_advertise(self) -> None:
        # The highest preference wins; among equals, the first one received (stable sort).
        best = sorted(self._advertises, key=lambda item: -item[0])[0][1]
        self._advertises = []
        ias = [(c, v) for c, v in best.options if c in (codec.OPT_IA_NA, codec.OPT_IA_PD)]
        self._begin_request(best.get(codec.OPT_SERVERID) or b"", ias)

    def _begin_request(self, server_id: bytes, ias: list[tuple[int, bytes]]) -> None:
        self._new_transaction()
        self.state = REQUESTING
        self._server_id = server_id
        self._request_ias = ias
        self._tries = 0
        self._rt = REQ_TIMEOUT + jitter(0.1 * REQ_TIMEOUT)
        self._send_request()

    def _send_request(self) -> None:
        if self._tries >= REQ_MAX_RC:
            log(f"{self.ifname}: DHCPv6 server did not answer the Request, soliciting again")
            self.start()
            return
        extra = [(codec.OPT_SERVERID, self._server_id), *self._request_ias]
        self._transmit(self._message(codec.REQUEST, extra))
        self._tries += 1
        self._schedule(self._next_rt(REQ_MAX_RT), self._send_request)

    def _send_information_request(self) -> None:
        self._transmit(self._message(codec.INFORMATION_REQUEST, []))
        self._schedule(self._next_rt(self.inf_max_rt), self._send_information_request)

    # -- lease maintenance -----------------------------------------------------------------

    def _lease_ias(self) -> list[tuple[int, bytes]]:
        lease = self.lease
        assert lease is not None
        out = []
        if lease.addresses:
            ia = codec.IdentityAssociation(codec.OPT_IA_NA, IAID, addresses=lease.addresses)
            out.append((codec.OPT_IA_NA, ia.encode()))
        if lease.prefixes:
            ia = codec.IdentityAssociation(codec.OPT_IA_PD, IAID, prefixes=lease.prefixes)
            out.append((codec.OPT_IA_PD, ia.encode()))
        return out

    def _renew(self) -> None:
        self.state = RENEWING
        self._new_transaction()
        self._rt = REN_TIMEOUT + jitter(0.1 * REN_TIMEOUT)
        self._send_renew()

    def _send_renew(self) -> None:
        lease = self.lease
        assert lease is not None
        t2_at = self._bound_at + lease.t2
        now = self.loop.clock()
        if now >= t2_at - EPSILON:
            self._rebind()
            return
        extra = [(codec.OPT_SERVERID, lease.server_id), *self._lease_ias()]
        self._transmit(self._message(codec.RENEW, extra))
        # RFC 8415 18.2.4: the Renew exchange's MRD is the time until T2.
        self._schedule(min(self._next_rt(REN_MAX_RT), t2_at - now), self._send_renew)

    def _rebind(self) -> None:
        self.state = REBINDING
        self._new_transaction()
        self._rt = REB_TIMEOUT + jitter(0.1 * REB_TIMEOUT)
        self._send_rebind()

    def _send_rebind(self) -> None:
        lease = self.lease
        assert lease is not None
        end = self._bound_at + lease.valid
        now = self.loop.clock()
        if now >= end - EPSILON:
            return  # the expiry timer takes over (RFC 8415 18.2.5: MRD ends at valid lifetime)
        self._transmit(self._message(codec.REBIND, self._lease_ias()))
        self._schedule(min(self._next_rt(REB_MAX_RT), end - now), self._send_rebind)

    def _expire(self) -> None:
        lease = self.lease
        self._expiry = None
        if lease is None:
            return
        log(f"{self.ifname}: DHCPv6 lease expired")
        self.lease = None
        self._cancel()
        self.on_expired(lease)
        self.start()

    # -- receiving -------------------------------------------------------------------------

    def handle_packet(self, data: bytes) -> None:
        """Feed one datagram from port 547; anything not for us is ignored."""
        try:
            message = codec.Message.decode(data)
            if message.xid != self.xid or message.get(codec.OPT_CLIENTID) != self.duid:
                return
            if message.get(codec.OPT_SERVERID) is None:
                return
            if message.kind == codec.ADVERTISE and self.state == SOLICITING:
                self._on_advertise(message)
            elif message.kind == codec.REPLY and self.state == INFORMING:
                self._on_information(message)
            elif message.kind == codec.REPLY and self.state in (REQUESTING, RENEWING, REBINDING):
                self._on_reply(message)
        except codec.MalformedPacketError as exc:
            log(f"{self.ifname}: ignoring malformed DHCPv6 message: {exc}")

    def _on_advertise(self, message: codec.Message) -> None:
        # SOL_MAX_RT counts even from an Advertise that offers nothing (RFC 8415 18.2.9).
        sol_max_rt = _max_rt(message, codec.OPT_SOL_MAX_RT)
        if sol_max_rt is not None:
            self.sol_max_rt = sol_max_rt
        if message.status() != codec.STATUS_SUCCESS or Dhcp6Lease(message).empty:
            return
        preference = _preference(message)
        self._advertises.append((preference, message))
        if preference == 255 or self.loop.clock() >= self._collect_until:
            self._choose_advertise()

    def _on_information(self, message: codec.Message) -> None:
        dns, domains = message.dns_servers(), message.domains()
        inf_max_rt = _max_rt(message, codec.OPT_INF_MAX_RT)
        if inf_max_rt is not None:
            self.inf_max_rt = inf_max_rt
        refresh = IRT_DEFAULT
        value = message.get(codec.OPT_INFORMATION_REFRESH_TIME)
        if value is not None and len(value) == 4:
            seconds = int.from_bytes(value, "big")
            refresh = IRT_DEFAULT if seconds == INFINITE else max(float(seconds), IRT_MINIMUM)
        self.state = INFORMED
        self._schedule(refresh, self.inform)
        log(f"{self.ifname}: DHCPv6 information dns {','.join(dns) or '-'}")
        if self.on_information is not None:
            self.on_information(dns, domains)

    def _on_reply(self, message: codec.Message) -> None:
        lease = Dhcp6Lease(message)
        renewing = self.state in (RENEWING, REBINDING)
        if renewing and lease.no_binding and self.lease is not None:
            # RFC 8415 18.2.10.1: the server lost our binding: Request it again; the current
            # lease keeps its expiry timer meanwhile.
            log(f"{self.ifname}: DHCPv6 server has no binding for us, requesting again")
            server = message.get(codec.OPT_SERVERID) or self.lease.server_id
            self._begin_request(server, self._lease_ias())
            return
        if message.status() != codec.STATUS_SUCCESS or lease.empty:
            if renewing:
                return  # keep trying until T2 / the end of the valid lifetime
            log(f"{self.ifname}: DHCPv6 server granted nothing, soliciting again")
            self._schedule(SOL_TIMEOUT, self.start)
            return
        self.lease = lease
        self.state = BOUND
        # Lease times count from the Reply.
        self._bound_at = self.loop.clock()
        self._cancel()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if lease.valid != INFINITE:
            self._expiry = self.loop.call_at(self._bound_at + lease.valid, self._expire)
        if lease.t1 != INFINITE and (lease.t1 or lease.valid != INFINITE):
            self._timer = self.loop.call_at(self._bound_at + lease.t1, self._renew)
        self.on_bound(lease)

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Dhcp6Socket:
    """UDP port 546 on one interface, sending to the all-servers multicast group."""

    def __init__(self, ifname: str, index: int) -> None:
        sock = _socket.socket(_socket.AF_INET6, _socket.SOCK_DGRAM, _socket.IPPROTO_UDP)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_BINDTODEVICE, ifname.encode())
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_IF, index)
            sock.bind(("::", 546, 0, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.index = index

    def fileno(self) -> int:
        """The descriptor to watch."""
        return self.sock.fileno()

    def send(self, packet: bytes, destination: str) -> None:
        """Send to the server port of `destination` on this interface."""
        self.sock.sendto(packet, (destination, 547, 0, self.index))

    def receive(self) -> list[bytes]:
        """Every datagram waiting."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096))
            except (BlockingIOError, InterruptedError):
                return out

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
