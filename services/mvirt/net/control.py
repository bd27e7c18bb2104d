"""The control plane: DHCPv4, DHCPv6 and router advertisement servers on every TAP, run on
the daemon's asyncio loop.

Each TAP gets three sockets bound to it with SO_BINDTODEVICE: UDP 67 (DHCPv4; replies are
broadcast, since the client has no address yet), UDP 547 joined to ff02::1:2 (DHCPv6; replies
go to the client's link-local address), and an ICMPv6 raw socket bound to fe80::1 joined to
ff02::2 (router solicitations in, advertisements out: answered at once and repeated every
60-180 s). The sockets follow the database through :meth:`ControlPlane.changed`, which the
manager calls after each applied change.

A packet that does not parse is counted and dropped; nothing a guest sends can raise out of
a receive callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

from mvirt.net import dhcp4_server, dhcp6_server, router_adv
from mvirt.net.allocation import mac_for
from mvirt.net.desired import DesiredState
from mvirt.net.model import GATEWAY_V6
from mvirt.pideisn.dhcp6_codec import duid_ll

log = logging.getLogger("mvirt.net.control")

SO_BINDTODEVICE = 25
MAX_PACKET = 4096


@dataclass
class TapServers:
    """The sockets and bindings of one TAP."""

    tap: str
    index: int
    v4: dhcp4_server.Binding4 | None
    v6: dhcp6_server.Binding6
    sockets: list[socket.socket] = field(default_factory=list)
    ra_timer: asyncio.TimerHandle | None = None


def _bound(family: int, kind: int, proto: int, tap: str) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, tap.encode())
    except OSError:
        sock.close()
        raise
    return sock


def mac_bytes(mac: str) -> bytes:
    """``02:aa:...`` as six bytes."""
    return bytes.fromhex(mac.replace(":", ""))


class ControlPlane:
    """DHCPv4/DHCPv6/RA servers for every TAP of the current state."""

    def __init__(self) -> None:
        self._taps: dict[str, TapServers] = {}
        self.stats: Counter[str] = Counter()
        """Packets answered and dropped, by kind (``dhcp4.answered``, ``dhcp6.dropped``...)."""

    def changed(self, state: DesiredState) -> None:
        """Opens servers on new TAPs, closes those of removed TAPs, refreshes bindings."""
        networks = {net.id: net for net in state.networks}
        wanted: dict[str, tuple[dhcp4_server.Binding4 | None, dhcp6_server.Binding6]] = {}
        for nic in state.nics:
            net = networks[nic.network_id]
            v4 = None
            if nic.ipv4 is not None:
                v4 = dhcp4_server.Binding4(
                    str(nic.ipv4), mac_bytes(nic.mac), net.dns_servers, net.ntp_servers
                )
            duid = duid_ll(mac_bytes(mac_for(net.id)))
            v6 = dhcp6_server.Binding6(
                duid, None if nic.ipv6 is None else str(nic.ipv6), net.dns_servers, net.ntp_servers
            )
            wanted[nic.tap] = (v4, v6)
        for tap in list(self._taps):
            if tap not in wanted:
                self._close_tap(self._taps.pop(tap))
        for tap, (v4, v6) in wanted.items():
            servers = self._taps.get(tap)
            if servers is None:
                try:
                    self._taps[tap] = self._open_tap(tap, v4, v6)
                except OSError as exc:
                    log.error("cannot serve DHCP on TAP", extra={"tap": tap, "reason": str(exc)})
            else:
                servers.v4, servers.v6 = v4, v6

    def close(self) -> None:
        """Closes every socket."""
        for servers in self._taps.values():
            self._close_tap(servers)
        self._taps.clear()

    def _open_tap(
        self, tap: str, v4: dhcp4_server.Binding4 | None, v6: dhcp6_server.Binding6
    ) -> TapServers:
        index = socket.if_nametoindex(tap)
        servers = TapServers(tap, index, v4, v6)
        loop = asyncio.get_running_loop()
        try:
            s4 = _bound(socket.AF_INET, socket.SOCK_DGRAM, 0, tap)
            servers.sockets.append(s4)
            s4.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s4.bind(("0.0.0.0", dhcp4_server.SERVER_PORT))
            loop.add_reader(s4.fileno(), self._on_dhcp4, servers, s4)

            s6 = _bound(socket.AF_INET6, socket.SOCK_DGRAM, 0, tap)
            servers.sockets.append(s6)
            s6.bind(("::", dhcp6_server.SERVER_PORT))
            group = socket.inet_pton(socket.AF_INET6, dhcp6_server.ALL_SERVERS)
            s6.setsockopt(
                socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group + struct.pack("@I", index)
            )
            loop.add_reader(s6.fileno(), self._on_dhcp6, servers, s6)

            ra = _bound(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6, tap)
            servers.sockets.append(ra)
            ra.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            ra.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            ra.bind((str(GATEWAY_V6), 0, 0, index))
            routers = socket.inet_pton(socket.AF_INET6, router_adv.ALL_ROUTERS)
            ra.setsockopt(
                socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, routers + struct.pack("@I", index)
            )
            loop.add_reader(ra.fileno(), self._on_icmp6, servers, ra)
        except OSError:
            self._close_tap(servers)
            raise
        self._advertise(servers)
        return servers

    def _close_tap(self, servers: TapServers) -> None:
        if servers.ra_timer is not None:
            servers.ra_timer.cancel()
        loop = asyncio.get_running_loop()
        for sock in servers.sockets:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(sock.fileno())
            sock.close()
        servers.sockets.clear()

    def _receive(self, sock: socket.socket) -> list[tuple[bytes, tuple[object, ...]]]:
        packets = []
        for _ in range(64):
            try:
                packets.append(sock.recvfrom(MAX_PACKET))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        return packets

    def _send(self, sock: socket.socket, data: bytes, address: tuple[object, ...]) -> None:
        try:
            sock.sendto(data, address)
        except OSError as exc:
            # No hypervisor on the TAP yet (no carrier), or the TAP is going away.
            self.stats["send_failed"] += 1
            log.debug("send failed", extra={"reason": str(exc)})

    def _on_dhcp4(self, servers: TapServers, sock: socket.socket) -> None:
        for data, _source in self._receive(sock):
            reply = dhcp4_server.answer(data, servers.v4)
            if reply is None:
                self.stats["dhcp4.dropped"] += 1
                continue
            self.stats["dhcp4.answered"] += 1
            self._send(sock, reply, ("255.255.255.255", dhcp4_server.CLIENT_PORT))

    def _on_dhcp6(self, servers: TapServers, sock: socket.socket) -> None:
        for data, source in self._receive(sock):
            reply = dhcp6_server.answer(data, servers.v6)
            if reply is None:
                self.stats["dhcp6.dropped"] += 1
                continue
            self.stats["dhcp6.answered"] += 1
            client = str(source[0])
            self._send(sock, reply, (client, dhcp6_server.CLIENT_PORT, 0, servers.index))

    def _on_icmp6(self, servers: TapServers, sock: socket.socket) -> None:
        solicited = False
        for data, _source in self._receive(sock):
            if router_adv.is_solicitation(data):
                solicited = True
        if solicited:
            self.stats["ra.solicited"] += 1
            self._advertise(servers)

    def _advertise(self, servers: TapServers) -> None:
        if servers.ra_timer is not None:
            servers.ra_timer.cancel()
        if servers.sockets:
            self._send(
                servers.sockets[-1],
                router_adv.advertisement(servers.v6.dns, servers.v6.address is not None),
                (router_adv.ALL_NODES, 0, 0, servers.index),
            )
        delay = random.uniform(router_adv.MIN_INTERVAL, router_adv.MAX_INTERVAL)
        servers.ra_timer = asyncio.get_running_loop().call_later(delay, self._advertise, servers)
