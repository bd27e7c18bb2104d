"""A small rtnetlink client over AF_NETLINK: links, addresses and routes, nothing more.

pyroute2 would do this too, but importing it costs more boot time under emulation than the
few messages pideisn needs; the codec below is a handful of struct formats from rtnetlink(7).
The raw `_socket` module is used instead of `socket` to skip the latter's enum set-up.
"""

from __future__ import annotations

import _socket
import errno
import os
import struct

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
IFA_CACHEINFO = 6
IFA_FLAGS = 8
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IFA_F_NOPREFIXROUTE = 0x200
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772

RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RTPROT_KERNEL = 2
RTPROT_STATIC = 4
RTPROT_RA = 9
RTPROT_DHCP = 16
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
RTN_UNICAST = 1
RTN_MULTICAST = 5
IP6_RT_PRIO_ADDRCONF = 256
INFINITY_LIFE = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBi")
_RTMSG = struct.Struct("=BBBBBBBBI")
_CACHEINFO = struct.Struct("=IIII")


class NetlinkError(OSError):
    """The kernel refused a request; `errno` is the kernel's error number."""


def _align(n: int) -> int:
    return (n + 3) & ~3


def encode_attr(kind: int, data: bytes) -> bytes:
    """One rtattr: length, type, payload, padding to 4 bytes."""
    length = _RTATTR.size + len(data)
    return _RTATTR.pack(length, kind) + data + b"\0" * (_align(length) - length)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """Attributes of a message body; a truncated or malformed tail is ignored."""
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > len(data):
            break
        attrs[kind & 0x3FFF] = data[offset + _RTATTR.size : offset + length]
        offset += _align(length)
    return attrs


def encode_message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message with its header."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def parse_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split a datagram into (type, flags, seq, body) tuples; stops at malformed framing."""
    out = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            break
        out.append((kind, flags, seq, data[offset + _NLMSGHDR.size : offset + length]))
        offset += _align(length)
    return out


class Link:
    """A network interface as the kernel reports it."""

    __slots__ = ("flags", "index", "kind", "mac", "name")

    def __init__(self, index: int, name: str, flags: int, kind: int, mac: bytes) -> None:
        self.index = index
        self.name = name
        self.flags = flags
        self.kind = kind
        self.mac = mac

    @property
    def is_loopback(self) -> bool:
        """True for `lo`."""
        return self.kind == ARPHRD_LOOPBACK or bool(self.flags & IFF_LOOPBACK)

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, mac={self.mac.hex(':')})"


class Address:
    """An address assigned to an interface."""

    __slots__ = ("address", "family", "flags", "index", "prefixlen")

    def __init__(self, index: int, family: int, address: str, prefixlen: int, flags: int) -> None:
        self.index = index
        self.family = family
        self.address = address
        self.prefixlen = prefixlen
        self.flags = flags

    def __repr__(self) -> str:
        return f"Address({self.index}, {self.address}/{self.prefixlen}, flags={self.flags:#x})"


def decode_link(body: bytes) -> Link | None:
    """An RTM_NEWLINK body as a Link, or None if it is too short."""
    if len(body) < _IFINFOMSG.size:
        return None
    _family, kind, index, flags, _change = _IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body[_IFINFOMSG.size :])
    name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
    return Link(index, name, flags, kind, attrs.get(IFLA_ADDRESS, b""))


_ADDRESS_SIZES = {_socket.AF_INET: 4, _socket.AF_INET6: 16}


def decode_address(body: bytes) -> Address | None:
    """An RTM_NEWADDR body as an Address, or None if it is too short, has no address or is of
    a family other than IPv4/IPv6 (the kernel also reports e.g. AF_MCTP or DECnet ones)."""
    if len(body) < _IFADDRMSG.size:
        return None
    family, prefixlen, flags, _scope, index = _IFADDRMSG.unpack_from(body)
    expected = _ADDRESS_SIZES.get(family)
    if expected is None:
        return None
    attrs = parse_attrs(body[_IFADDRMSG.size :])
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None or len(raw) != expected:
        return None
    if len(attrs.get(IFA_FLAGS, b"")) == 4:
        flags = struct.unpack("=I", attrs[IFA_FLAGS])[0]
    return Address(index, family, _socket.inet_ntop(family, raw), prefixlen, flags)


def decode_error(body: bytes) -> int:
    """The (negative) errno of an NLMSG_ERROR body, 0 for an ACK; -EBADMSG if truncated."""
    if len(body) < 4:
        return -74  # EBADMSG
    return int(struct.unpack_from("=i", body)[0])


def family_of(address: str) -> int:
    """AF_INET6 for an address with a colon, else AF_INET."""
    return _socket.AF_INET6 if ":" in address else _socket.AF_INET


class Netlink:
    """A blocking rtnetlink socket issuing one request at a time."""

    def __init__(self) -> None:
        self._sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        self._seq += 1
        seq = self._seq
        self._sock.send(encode_message(kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body))
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self._sock.recv(65536)
            for mkind, _mflags, mseq, mbody in parse_messages(data):
                if mseq != seq:
                    continue
                if mkind == NLMSG_DONE:
                    return replies
                if mkind == NLMSG_ERROR:
                    code = decode_error(mbody)
                    if code:
                        raise NetlinkError(-code, os.strerror(-code))
                    return replies
                replies.append((mkind, mbody))

    def links(self) -> list[Link]:
        """Every interface, in index order."""
        body = _IFINFOMSG.pack(_socket.AF_UNSPEC, 0, 0, 0, 0)
        out = []
        for kind, mbody in self._request(RTM_GETLINK, NLM_F_DUMP, body):
            link = decode_link(mbody) if kind == RTM_NEWLINK else None
            if link is not None:
                out.append(link)
        return sorted(out, key=lambda link: link.index)

    def set_up(self, index: int) -> None:
        """Bring an interface administratively up."""
        self._request(RTM_NEWLINK, 0, _IFINFOMSG.pack(_socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def set_mtu(self, index: int, mtu: int) -> None:
        """Set an interface's MTU (e.g. DHCPv4 option 26, an RA's MTU option)."""
        body = _IFINFOMSG.pack(_socket.AF_UNSPEC, 0, index, 0, 0)
        body += encode_attr(IFLA_MTU, struct.pack("=I", mtu))
        self._request(RTM_NEWLINK, 0, body)

    def addresses(self, index: int = 0) -> list[Address]:
        """Every address (of one interface when `index` is given)."""
        body = _IFADDRMSG.pack(_socket.AF_UNSPEC, 0, 0, 0, 0)
        out = []
        for kind, mbody in self._request(RTM_GETADDR, NLM_F_DUMP, body):
            addr = decode_address(mbody) if kind == RTM_NEWADDR else None
            if addr is not None and index in (0, addr.index):
                out.append(addr)
        return out

    def add_address(
        self,
        index: int,
        address: str,
        prefixlen: int,
        *,
        broadcast: str | None = None,
        valid: int = INFINITY_LIFE,
        preferred: int = INFINITY_LIFE,
        flags: int = 0,
    ) -> None:
        """Add or refresh an address with its lifetimes (seconds, 0xffffffff = forever)."""
        family = family_of(address)
        raw = _socket.inet_pton(family, address)
        body = _IFADDRMSG.pack(family, prefixlen, flags & 0xFF, RT_SCOPE_UNIVERSE, index)
        body += encode_attr(IFA_LOCAL, raw) + encode_attr(IFA_ADDRESS, raw)
        if broadcast:
            body += encode_attr(IFA_BROADCAST, _socket.inet_pton(family, broadcast))
        body += encode_attr(IFA_CACHEINFO, _CACHEINFO.pack(preferred, valid, 0, 0))
        body += encode_attr(IFA_FLAGS, struct.pack("=I", flags))
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body)

    def delete_address(self, index: int, address: str, prefixlen: int) -> None:
        """Remove an address."""
        family = family_of(address)
        raw = _socket.inet_pton(family, address)
        body = _IFADDRMSG.pack(family, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += encode_attr(IFA_LOCAL, raw)
        self._request(RTM_DELADDR, 0, body)

    def _route_body(
        self,
        dst: str,
        dst_len: int,
        index: int,
        *,
        gateway: str | None,
        protocol: int,
        metric: int,
        table: int = RT_TABLE_MAIN,
        kind: int = RTN_UNICAST,
    ) -> bytes:
        family = family_of(dst)
        scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        if family == _socket.AF_INET6:
            scope = RT_SCOPE_UNIVERSE
        body = _RTMSG.pack(family, dst_len, 0, 0, table, protocol, scope, kind, 0)
        if dst_len:
            body += encode_attr(RTA_DST, _socket.inet_pton(family, dst))
        if gateway:
            body += encode_attr(RTA_GATEWAY, _socket.inet_pton(family, gateway))
        body += encode_attr(RTA_OIF, struct.pack("=i", index))
        if metric:
            body += encode_attr(RTA_PRIORITY, struct.pack("=I", metric))
        return body

    def add_route(
        self,
        dst: str,
        dst_len: int,
        index: int,
        *,
        gateway: str | None = None,
        protocol: int = RTPROT_STATIC,
        metric: int = 0,
    ) -> None:
        """Add or replace a route; without a gateway it is on-link (scope link)."""
        body = self._route_body(
            dst, dst_len, index, gateway=gateway, protocol=protocol, metric=metric
        )
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body)

    def add_multicast_route6(self, index: int) -> None:
        """Add the route for IPv6 multicast (ff00::/8, local table) that the kernel itself adds
        when IPv6 on the link becomes ready, with the kernel's own attributes: its later add
        then finds it in place. Without it, multicast to the host is dropped on input."""
        body = self._route_body(
            "ff00::", 8, index, gateway=None, protocol=RTPROT_KERNEL,
            metric=IP6_RT_PRIO_ADDRCONF, table=RT_TABLE_LOCAL, kind=RTN_MULTICAST,
        )  # fmt: skip
        try:
            self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise

    def delete_route(
        self, dst: str, dst_len: int, index: int, *, gateway: str | None = None, metric: int = 0
    ) -> None:
        """Remove a route."""
        body = self._route_body(dst, dst_len, index, gateway=gateway, protocol=0, metric=metric)
        self._request(RTM_DELROUTE, 0, body)
