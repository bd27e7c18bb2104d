"""DHCPv6 client (RFC 8415): solicit, request, renew at T1, rebind at T2, for one IA_NA and one
IA_PD. Results go to callbacks; netconfig applies addresses and keeps delegated prefixes.
"""

from __future__ import annotations

import _socket
import struct

from mvirt.pideisn import dhcp6_codec as codec
from mvirt.pideisn.console import log
from mvirt.pideisn.entropy import jitter, random_bytes
from mvirt.pideisn.loop import Loop, Timer

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ALL_SERVERS = "ff02::1:2"
SOL_TIMEOUT = 1.0
SOL_MAX_RT = 120.0
REQ_TIMEOUT = 1.0
REQ_MAX_RC = 10
IAID = 1

INIT = "init"
SOLICITING = "soliciting"
REQUESTING = "requesting"
BOUND = "bound"
RENEWING = "renewing"
REBINDING = "rebinding"


class Dhcp6Lease:
    """What a REPLY granted: addresses, delegated prefixes, DNS, and the timers."""

    __slots__ = ("addresses", "dns", "domains", "prefixes", "server_id", "t1", "t2", "valid")

    def __init__(self, reply: codec.Message) -> None:
        self.server_id = reply.get(codec.OPT_SERVERID) or b""
        self.addresses: list[codec.IaAddress] = []
        self.prefixes: list[codec.IaPrefix] = []
        t1s: list[int] = []
        t2s: list[int] = []
        for ia in reply.ias():
            if ia.status != codec.STATUS_SUCCESS:
                continue
            usable_addresses = [a for a in ia.addresses if a.valid > 0]
            usable_prefixes = [p for p in ia.prefixes if p.valid > 0]
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
        self.dns = reply.dns_servers()
        self.domains = reply.domains()

    @property
    def empty(self) -> bool:
        """True when nothing usable was granted."""
        return not self.addresses and not self.prefixes

    def __repr__(self) -> str:
        return f"Dhcp6Lease({self.addresses}, {self.prefixes})"


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
        want_address: bool = True,
        want_prefix: bool = True,
    ) -> None:
        self.loop = loop
        self.ifname = ifname
        self.duid = codec.duid_ll(mac)
        self.send = send
        self.on_bound = on_bound
        self.on_expired = on_expired
        self.want_address = want_address
        self.want_prefix = want_prefix
        self.state = INIT
        self.lease: Dhcp6Lease | None = None
        self.xid = 0
        self._advertise: codec.Message | None = None
        self._timer: Timer | None = None
        self._rt = SOL_TIMEOUT
        self._tries = 0
        self._started = 0.0
        self._bound_at = 0.0

    def start(self) -> None:
        """Begin with a SOLICIT."""
        self._new_transaction()
        self.state = SOLICITING
        self._rt = SOL_TIMEOUT
        self._send_solicit()

    def stop(self) -> None:
        """Stop all timers."""
        self._cancel()
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
        options = [
            (codec.OPT_CLIENTID, self.duid),
            (codec.OPT_ELAPSED_TIME, struct.pack("!H", elapsed)),
            (codec.OPT_ORO, struct.pack("!HH", codec.OPT_DNS_SERVERS, codec.OPT_DOMAIN_LIST)),
            *extra,
        ]
        return codec.Message(kind, self.xid, options).encode()

    def _transmit(self, packet: bytes) -> None:
        try:
            self.send(packet, ALL_SERVERS)
        except OSError as exc:
            log(f"{self.ifname}: DHCPv6 send failed: {exc}")

    def _next_rt(self, max_rt: float) -> float:
        # RFC 8415 15: RT = 2*RTprev + RAND*RTprev, capped at MRT.
        rt = self._rt
        self._rt = min(2 * rt + jitter(0.1 * rt), max_rt)
        return rt + jitter(0.1 * rt)

    def _send_solicit(self) -> None:
        self._transmit(self._message(codec.SOLICIT, self._requested_ias()))
        self._schedule(self._next_rt(SOL_MAX_RT), self._send_solicit)

    def _send_request(self) -> None:
        assert self._advertise is not None
        server = self._advertise.get(codec.OPT_SERVERID) or b""
        ias = [
            (c, v) for c, v in self._advertise.options if c in (codec.OPT_IA_NA, codec.OPT_IA_PD)
        ]
        self._transmit(self._message(codec.REQUEST, [(codec.OPT_SERVERID, server), *ias]))
        self._tries += 1
        if self._tries >= REQ_MAX_RC:
            self._schedule(self._next_rt(30.0), self.start)
        else:
            self._schedule(self._next_rt(30.0), self._send_request)

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

    def _send_renew(self) -> None:
        lease = self.lease
        assert lease is not None
        if self.loop.clock() >= self._bound_at + lease.t2:
            self.state = REBINDING
            self._send_rebind()
            return
        extra = [(codec.OPT_SERVERID, lease.server_id), *self._lease_ias()]
        self._transmit(self._message(codec.RENEW, extra))
        self._schedule(self._next_rt(600.0), self._send_renew)

    def _send_rebind(self) -> None:
        lease = self.lease
        assert lease is not None
        if self.loop.clock() >= self._bound_at + lease.valid:
            log(f"{self.ifname}: DHCPv6 lease expired")
            self.lease = None
            self.on_expired(lease)
            self.start()
            return
        self._transmit(self._message(codec.REBIND, self._lease_ias()))
        self._schedule(self._next_rt(600.0), self._send_rebind)

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
            elif message.kind == codec.REPLY and self.state in (REQUESTING, RENEWING, REBINDING):
                self._on_reply(message)
        except codec.MalformedPacketError as exc:
            log(f"{self.ifname}: ignoring malformed DHCPv6 message: {exc}")

    def _on_advertise(self, message: codec.Message) -> None:
        if message.status() != codec.STATUS_SUCCESS or Dhcp6Lease(message).empty:
            return
        self._advertise = message
        self.state = REQUESTING
        self._tries = 0
        self._rt = REQ_TIMEOUT
        self._send_request()

    def _on_reply(self, message: codec.Message) -> None:
        lease = Dhcp6Lease(message)
        if message.status() != codec.STATUS_SUCCESS or lease.empty:
            log(f"{self.ifname}: DHCPv6 server granted nothing, soliciting again")
            self._schedule(SOL_TIMEOUT, self.start)
            return
        self.lease = lease
        self.state = BOUND
        self._bound_at = self._started
        self._cancel()
        if lease.t1 and lease.valid != 0xFFFFFFFF:
            self._timer = self.loop.call_at(self._bound_at + lease.t1, self._renew)
        self.on_bound(lease)

    def _renew(self) -> None:
        self.state = RENEWING
        self._new_transaction()
        self._rt = 10.0
        self._send_renew()

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
