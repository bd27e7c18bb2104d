"""DHCPv4 client state machine (RFC 2131): discover, request, bound, renew at T1, rebind at T2.

Lease times count from the moment the REQUEST that got the ACK was sent (RFC 2131 4.4.1), so
a server that answers late never hands out a lease that is already half gone. A NAK, or an ACK
whose lease cannot be used, restarts discovery after a delay that doubles with each one in a
row (1, 2, 4 … 64 s), so a server that refuses every request does not get a packet storm.

The client only exchanges messages and reports leases through callbacks; applying a lease to
the interface is netconfig's job, and the socket is passed in, so the state machine can be
driven by a test with a fake clock and by PID 1 alike.
"""

from __future__ import annotations

import _socket

from mvirt.pideisn import dhcp4_codec as codec
from mvirt.pideisn.console import log
from mvirt.pideisn.entropy import jitter, random_bytes
from mvirt.pideisn.loop import Loop, Timer

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

INIT = "init"
REBOOTING = "init-reboot"
SELECTING = "selecting"
REQUESTING = "requesting"
BOUND = "bound"
RENEWING = "renewing"
REBINDING = "rebinding"

PARAMS = bytes(
    (
        codec.OPT_SUBNET_MASK,
        codec.OPT_ROUTER,
        codec.OPT_DNS,
        codec.OPT_HOSTNAME,
        codec.OPT_DOMAIN,
        codec.OPT_MTU,
        codec.OPT_LEASE_TIME,
        codec.OPT_T1,
        codec.OPT_T2,
        codec.OPT_CLASSLESS_ROUTES,
    )
)
FIRST_TIMEOUT = 2.0
MAX_TIMEOUT = 64.0
REQUEST_TRIES = 4
REBOOT_TRIES = 2
NAK_FIRST_DELAY = 1.0
NAK_MAX_DELAY = 64.0
EPSILON = 1e-6  # timers fire at their time, give or take float rounding


class Dhcp4Client:
    """One interface's DHCPv4 client; `send(packet, destination_ip)` goes to port 67."""

    def __init__(
        self,
        loop: Loop,
        ifname: str,
        mac: bytes,
        *,
        send: Callable[[bytes, str], None],
        on_bound: Callable[[codec.Lease], None],
        on_expired: Callable[[codec.Lease], None],
        hostname: str | None = None,
        first_timeout: float = FIRST_TIMEOUT,
        previous_address: str | None = None,
    ) -> None:
        self.loop = loop
        self.ifname = ifname
        self.mac = mac
        self.send = send
        self.on_bound = on_bound
        self.on_expired = on_expired
        self.hostname = hostname
        self.first_timeout = first_timeout
        self.state = INIT
        self.lease: codec.Lease | None = None
        self.xid = 0
        self._offer: codec.Message | None = None
        self._timer: Timer | None = None
        self._timeout = first_timeout
        self._tries = 0
        self._started = 0.0
        self._bound_at = 0.0
        self._requested_at = 0.0
        self._refusals = 0
        # INIT-REBOOT (RFC 2131 3.2): ask for the address of the previous boot first.
        self._previous = previous_address

    # -- driving ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin (or restart) acquisition: INIT-REBOOT with a remembered address, else DISCOVER."""
        self._new_transaction()
        self._timeout = self.first_timeout
        self._tries = 0
        if self._previous is not None:
            self.state = REBOOTING
            self._send_reboot_request()
            return
        self.state = SELECTING
        self._send_discover()

    def release(self) -> None:
        """Give the lease back to its server (RFC 2131 4.4.6), e.g. at shutdown, and stop."""
        lease = self.lease
        self.stop()
        if lease is None or lease.server_id is None:
            return
        self._new_transaction()
        extra = {codec.OPT_SERVER_ID: codec.ip_to_bytes(lease.server_id)}
        message = self._message(codec.RELEASE, extra, ciaddr=lease.address)
        self._transmit(message, lease.server_id)
        self.lease = None

    def stop(self) -> None:
        """Stop all timers; the lease is left as it is."""
        self._cancel()
        self.state = INIT

    def handle_packet(self, data: bytes) -> None:
        """Feed one received datagram; anything not for this transaction is ignored."""
        try:
            message = codec.Message.decode(data)
        except codec.MalformedPacketError:
            return
        if message.op != codec.BOOTREPLY or message.xid != self.xid:
            return
        if message.chaddr[:6] != self.mac[:6]:
            return
        kind = message.message_type
        if kind == codec.OFFER and self.state == SELECTING:
            self._on_offer(message)
        elif kind == codec.ACK and self.state in (REBOOTING, REQUESTING, RENEWING, REBINDING):
            self._on_ack(message)
        elif kind == codec.NAK and self.state == REBOOTING:
            # The remembered address is not ours any more: discover at once, it is expected.
            log(f"{self.ifname}: DHCPv4 NAK for the previous address {self._previous}")
            self._previous = None
            self.start()
        elif kind == codec.NAK and self.state in (REQUESTING, RENEWING, REBINDING):
            self.refuse("NAK from server")

    # -- messages --------------------------------------------------------------------------

    def _new_transaction(self) -> None:
        self.xid = int.from_bytes(random_bytes(4), "big")
        self._started = self.loop.clock()

    def _message(self, kind: int, extra: dict[int, bytes], ciaddr: str = "0.0.0.0") -> bytes:
        options = {
            codec.OPT_MESSAGE_TYPE: bytes((kind,)),
            codec.OPT_CLIENT_ID: b"\x01" + self.mac[:6],
        }
        if kind != codec.RELEASE:
            options[codec.OPT_PARAMS] = PARAMS
            options[codec.OPT_MAX_SIZE] = (1500).to_bytes(2, "big")
            if self.hostname:
                options[codec.OPT_HOSTNAME] = self.hostname.encode()
        options.update(extra)
        secs = min(int(self.loop.clock() - self._started), 0xFFFF)
        # Until an address is configured, replies cannot be received by unicast.
        flags = codec.FLAG_BROADCAST if ciaddr == "0.0.0.0" else 0
        message = codec.Message(
            codec.BOOTREQUEST, self.xid, self.mac, options, secs=secs, flags=flags, ciaddr=ciaddr
        )
        return message.encode()

    def _send_discover(self) -> None:
        self._transmit(self._message(codec.DISCOVER, {}), "255.255.255.255")
        self._schedule(self._backoff(), self._send_discover)

    def _send_request(self) -> None:
        assert self._offer is not None
        offer = self._offer
        extra = {
            codec.OPT_REQUESTED_IP: codec.ip_to_bytes(offer.yiaddr),
            codec.OPT_SERVER_ID: offer.options.get(codec.OPT_SERVER_ID, b""),
        }
        self._send_request_message(extra, "0.0.0.0", "255.255.255.255")
        self._tries += 1
        if self._tries > REQUEST_TRIES:
            self._schedule(self._backoff(), self.start)
        else:
            self._schedule(self._backoff(), self._send_request)

    def _send_reboot_request(self) -> None:
        assert self._previous is not None
        extra = {codec.OPT_REQUESTED_IP: codec.ip_to_bytes(self._previous)}
        self._send_request_message(extra, "0.0.0.0", "255.255.255.255")
        self._tries += 1
        if self._tries > REBOOT_TRIES:
            # No server knows (or answers for) the old address: forget it, discover.
            self._previous = None
            self._schedule(self._backoff(), self.start)
        else:
            self._schedule(self._backoff(), self._send_reboot_request)

    def _send_request_message(self, extra: dict[int, bytes], ciaddr: str, destination: str) -> None:
        # The lease will count from here: the last REQUEST sent before the ACK (RFC 2131 4.4.1).
        self._requested_at = self.loop.clock()
        self._transmit(self._message(codec.REQUEST, extra, ciaddr=ciaddr), destination)

    def _transmit(self, packet: bytes, destination: str) -> None:
        try:
            self.send(packet, destination)
        except OSError as exc:
            log(f"{self.ifname}: DHCPv4 send failed: {exc}")

    def _backoff(self) -> float:
        timeout = self._timeout
        self._timeout = min(self._timeout * 2, MAX_TIMEOUT)
        return max(0.5, timeout + jitter(min(1.0, timeout / 4)))

    # -- replies ---------------------------------------------------------------------------

    def _on_offer(self, message: codec.Message) -> None:
        if message.yiaddr == "0.0.0.0" or codec.OPT_SERVER_ID not in message.options:
            return
        self._offer = message
        self.state = REQUESTING
        self._tries = 0
        self._timeout = self.first_timeout
        self._send_request()

    def _on_ack(self, message: codec.Message) -> None:
        try:
            lease = codec.Lease(message)
        except codec.MalformedPacketError as exc:
            log(f"{self.ifname}: ignoring malformed DHCPv4 ACK: {exc}")
            return
        problem = lease.unusable()
        if problem is not None:
            self.refuse(f"unusable lease ({problem})")
            return
        if lease.server_id is None and self.lease is not None:
            lease.server_id = self.lease.server_id
        self.lease = lease
        self.state = BOUND
        self._refusals = 0
        self._bound_at = self._requested_at
        self._cancel()
        if lease.lease_time != codec.INFINITE:
            self._timer = self.loop.call_at(self._bound_at + lease.t1, self._renew)
        self.on_bound(lease)

    def refuse(self, why: str) -> None:
        """A NAK or an unusable ACK: drop any lease and start over after a growing delay."""
        delay = min(NAK_FIRST_DELAY * 2**self._refusals, NAK_MAX_DELAY)
        self._refusals += 1
        log(f"{self.ifname}: DHCPv4 {why}, starting over in {delay:.0f} s")
        self._expire()
        self._previous = None
        self.state = INIT
        self._schedule(delay, self.start)

    # -- lease maintenance -----------------------------------------------------------------

    def _renew(self) -> None:
        assert self.lease is not None
        self.state = RENEWING
        self._new_transaction()
        self._send_renew()

    def _send_renew(self) -> None:
        lease = self.lease
        assert lease is not None
        now = self.loop.clock()
        t2_at = self._bound_at + lease.t2
        if now >= t2_at - EPSILON:
            self.state = REBINDING
            self._send_rebind()
            return
        destination = lease.server_id or "255.255.255.255"
        self._send_request_message({}, lease.address, destination)
        # RFC 2131 4.4.5: wait half the time remaining until T2 (at least a short moment), and
        # never past T2 itself.
        self._schedule(min(max((t2_at - now) / 2, 1.0), t2_at - now), self._send_renew)

    def _send_rebind(self) -> None:
        lease = self.lease
        assert lease is not None
        now = self.loop.clock()
        end = self._bound_at + lease.lease_time
        if now >= end - EPSILON:
            log(f"{self.ifname}: DHCPv4 lease {lease.address} expired")
            self._expire()
            self.start()
            return
        self._send_request_message({}, lease.address, "255.255.255.255")
        self._schedule(min(max((end - now) / 2, 1.0), end - now), self._send_rebind)

    def _expire(self) -> None:
        lease = self.lease
        self.lease = None
        self._cancel()
        if lease is not None:
            self.on_expired(lease)

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Dhcp4Socket:
    """A UDP socket on port 68 bound to one interface, able to broadcast before it has an IP."""

    def __init__(self, ifname: str) -> None:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, _socket.IPPROTO_UDP)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_BROADCAST, 1)
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_BINDTODEVICE, ifname.encode())
            sock.bind(("0.0.0.0", 68))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.sock = sock

    def fileno(self) -> int:
        """The descriptor to watch."""
        return self.sock.fileno()

    def send(self, packet: bytes, destination: str) -> None:
        """Send to the server port of `destination`."""
        self.sock.sendto(packet, (destination, 67))

    def receive(self) -> list[bytes]:
        """Every datagram waiting (non-blocking)."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096))
            except (BlockingIOError, InterruptedError):
                return out

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
