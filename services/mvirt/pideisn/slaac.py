"""SLAAC host side (RFC 4861/4862): solicit routers, hand each valid RA to a callback.

The kernel's own RA processing is switched off for the interfaces pideisn manages, so the
addresses, routes and DNS servers from RAs are applied in one place (netconfig) like DHCP's.
"""

from __future__ import annotations

import _socket
import struct

from mvirt.pideisn import ndp_codec as codec
from mvirt.pideisn.console import log
from mvirt.pideisn.loop import Loop, Timer

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

ALL_ROUTERS = "ff02::2"
FIRST_INTERVAL = 1.0
MAX_INTERVAL = 60.0


class Icmp6Socket:
    """A raw ICMPv6 socket on one interface with hop limit 255, as NDP requires."""

    def __init__(self, ifname: str, index: int) -> None:
        sock = _socket.socket(_socket.AF_INET6, _socket.SOCK_RAW, _socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_BINDTODEVICE, ifname.encode())
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_MULTICAST_IF, index)
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_RECVHOPLIMIT, 1)
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
        """Send an ICMPv6 message to `destination` on this interface."""
        self.sock.sendto(packet, (destination, 0, 0, self.index))

    def receive(self) -> list[tuple[bytes, str, int]]:
        """Waiting messages as (data, source address, hop limit)."""
        out: list[tuple[bytes, str, int]] = []
        while True:
            try:
                data, ancillary, _flags, source = self.sock.recvmsg(4096, 64)
            except (BlockingIOError, InterruptedError):
                return out
            hop_limit = -1
            for level, kind, value in ancillary:
                if level == _socket.IPPROTO_IPV6 and kind == _socket.IPV6_HOPLIMIT:
                    hop_limit = struct.unpack("=i", value[:4])[0]
            out.append((data, source[0].split("%", 1)[0], hop_limit))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


ETH_P_IPV6 = 0x86DD


def send_unspecified_solicitation(ifname: str) -> None:
    """Send an RS from the unspecified address through a packet socket.

    Until the link-local address has passed DAD the kernel has no source address for a raw
    ICMPv6 socket (EADDRNOTAVAIL), yet RFC 4861 6.3.7 lets a host solicit from `::`: the
    router answers to all-nodes, and the RA is handled while DAD still runs (about a second
    under emulation that the boot no longer waits for).
    """
    sock = _socket.socket(_socket.AF_PACKET, _socket.SOCK_DGRAM, _socket.htons(ETH_P_IPV6))
    try:
        packet = codec.unspecified_source_solicitation()
        sock.sendto(packet, (ifname, ETH_P_IPV6, 0, 0, codec.ALL_ROUTERS_MAC))
    finally:
        sock.close()


class SlaacClient:
    """Sends router solicitations until an RA arrives; reports every valid RA."""

    def __init__(
        self,
        loop: Loop,
        ifname: str,
        mac: bytes,
        send: Callable[[bytes, str], None],
        on_advertisement: Callable[[codec.RouterAdvertisement, str], None],
    ) -> None:
        self.loop = loop
        self.ifname = ifname
        self.mac = mac
        self.send = send
        self.on_advertisement = on_advertisement
        self.received = False
        self._interval = FIRST_INTERVAL
        self._timer: Timer | None = None

    def start(self) -> None:
        """Solicit now and keep soliciting with backoff until a router answers."""
        self.received = False
        self._interval = FIRST_INTERVAL
        self._solicit()

    def stop(self) -> None:
        """Stop soliciting."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _solicit(self) -> None:
        try:
            self.send(codec.encode_router_solicitation(self.mac), ALL_ROUTERS)
        except OSError as exc:
            log(f"{self.ifname}: router solicitation failed: {exc}")
        self._timer = self.loop.call_later(self._interval, self._solicit)
        self._interval = min(self._interval * 2, MAX_INTERVAL)

    def handle_packet(self, data: bytes, source: str, hop_limit: int) -> None:
        """Feed one received ICMPv6 message; invalid or off-link ones are ignored (RFC 4861)."""
        if not data or data[0] != codec.ROUTER_ADVERTISEMENT:
            return
        if hop_limit not in (-1, 255) or not source.lower().startswith("fe80:"):
            return
        try:
            ra = codec.RouterAdvertisement.decode(data)
        except codec.MalformedPacketError as exc:
            log(f"{self.ifname}: ignoring malformed router advertisement: {exc}")
            return
        if not self.received:
            self.received = True
            self.stop()
        self.on_advertisement(ra, source)
