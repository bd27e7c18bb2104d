"""ICMPv6 router solicitations and advertisements (RFC 4861) and the RDNSS option (RFC 8106)."""

from __future__ import annotations

import _socket
import struct

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
OPT_SOURCE_LLADDR = 1
OPT_PREFIX_INFO = 3
OPT_MTU = 5
OPT_RDNSS = 25
FLAG_MANAGED = 0x80
FLAG_OTHER = 0x40
PREFIX_ON_LINK = 0x80
PREFIX_AUTONOMOUS = 0x40

_RA = struct.Struct("!BBHBBHII")
_PREFIX = struct.Struct("!BBIII16s")


class MalformedPacketError(ValueError):
    """The bytes are not a well-formed ICMPv6 message of the expected type."""


class PrefixInfo:
    """One prefix information option."""

    __slots__ = ("flags", "preferred", "prefix", "prefixlen", "valid")

    def __init__(self, prefix: str, prefixlen: int, flags: int, valid: int, preferred: int) -> None:
        self.prefix = prefix
        self.prefixlen = prefixlen
        self.flags = flags
        self.valid = valid
        self.preferred = preferred

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrefixInfo):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"PrefixInfo({self.prefix}/{self.prefixlen}, flags={self.flags:#x})"


class RouterAdvertisement:
    """The parts of an RA a host acts on."""

    __slots__ = (
        "dns",
        "dns_lifetime",
        "flags",
        "hop_limit",
        "lifetime",
        "mtu",
        "prefixes",
        "source_mac",
    )

    def __init__(
        self,
        *,
        flags: int = 0,
        lifetime: int = 0,
        hop_limit: int = 64,
        prefixes: list[PrefixInfo] | None = None,
        dns: list[str] | None = None,
        dns_lifetime: int = 0,
        mtu: int | None = None,
        source_mac: bytes | None = None,
    ) -> None:
        self.flags = flags
        self.lifetime = lifetime
        self.hop_limit = hop_limit
        self.prefixes = prefixes or []
        self.dns = dns or []
        self.dns_lifetime = dns_lifetime
        self.mtu = mtu
        self.source_mac = source_mac

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouterAdvertisement):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"RouterAdvertisement(flags={self.flags:#x}, lifetime={self.lifetime})"

    def encode(self) -> bytes:
        """Wire format (checksum left 0: the kernel fills it for ICMPv6 sockets)."""
        out = bytearray(
            _RA.pack(ROUTER_ADVERTISEMENT, 0, 0, self.hop_limit, self.flags, self.lifetime, 0, 0)
        )
        if self.source_mac is not None:
            out += _lladdr_option(self.source_mac)
        if self.mtu is not None:
            out += struct.pack("!BBHI", OPT_MTU, 1, 0, self.mtu)
        for info in self.prefixes:
            raw = _socket.inet_pton(_socket.AF_INET6, info.prefix)
            out += bytes((OPT_PREFIX_INFO, 4))
            out += _PREFIX.pack(info.prefixlen, info.flags, info.valid, info.preferred, 0, raw)
        if self.dns:
            out += struct.pack("!BBHI", OPT_RDNSS, 1 + 2 * len(self.dns), 0, self.dns_lifetime)
            for server in self.dns:
                out += _socket.inet_pton(_socket.AF_INET6, server)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> RouterAdvertisement:
        """Parse an RA; raises MalformedPacketError for anything else or anything broken."""
        if len(data) < _RA.size:
            raise MalformedPacketError("router advertisement too short")
        kind, code, _sum, hop_limit, flags, lifetime, _reach, _retrans = _RA.unpack_from(data)
        if kind != ROUTER_ADVERTISEMENT or code != 0:
            raise MalformedPacketError(f"not a router advertisement (type {kind}, code {code})")
        ra = cls(flags=flags, lifetime=lifetime, hop_limit=hop_limit)
        # Each option stands on its own: a broken prefix or RDNSS option is skipped (RFC 4861
        # 4.6.2, RFC 8106 5.3.1) and the rest of the RA still counts; only broken framing
        # (a zero length, an option running past the end) rejects the whole message.
        for opt, body in _options(data[_RA.size :]):
            if opt == OPT_PREFIX_INFO:
                info = _prefix_info(body)
                if info is not None:
                    ra.prefixes.append(info)
            elif opt == OPT_RDNSS:
                if len(body) < 22 or (len(body) - 6) % 16:
                    continue
                ra.dns_lifetime = struct.unpack_from("!I", body, 2)[0]
                for i in range(6, len(body), 16):
                    ra.dns.append(_socket.inet_ntop(_socket.AF_INET6, body[i : i + 16]))
            elif opt == OPT_MTU and len(body) == 6:
                ra.mtu = struct.unpack_from("!I", body, 2)[0]
            elif opt == OPT_SOURCE_LLADDR:
                ra.source_mac = body[:6]
        return ra


def _prefix_info(body: bytes) -> PrefixInfo | None:
    """One prefix information option, or None when it is malformed."""
    if len(body) != 30:
        return None
    length, pflags, valid, preferred, _res, raw = _PREFIX.unpack(body)
    if length > 128:
        return None
    return PrefixInfo(_socket.inet_ntop(_socket.AF_INET6, raw), length, pflags, valid, preferred)


def _lladdr_option(mac: bytes) -> bytes:
    body = mac[:6]
    return bytes((OPT_SOURCE_LLADDR, 1)) + body


def _options(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    i = 0
    while i + 2 <= len(data):
        kind, units = data[i], data[i + 1]
        if units == 0:
            raise MalformedPacketError(f"option {kind} with length 0")
        end = i + units * 8
        if end > len(data):
            raise MalformedPacketError(f"option {kind} runs past the end")
        out.append((kind, data[i + 2 : end]))
        i = end
    if i != len(data):
        raise MalformedPacketError("trailing bytes after the options")
    return out


def encode_router_solicitation(mac: bytes | None) -> bytes:
    """An RS, with our link-layer address when we have a source address to go with it."""
    out = struct.pack("!BBHI", ROUTER_SOLICITATION, 0, 0, 0)
    return out + (_lladdr_option(mac) if mac else b"")


ALL_ROUTERS_MAC = b"\x33\x33\x00\x00\x00\x02"


def icmp6_checksum(source: bytes, destination: bytes, message: bytes) -> int:
    """The ICMPv6 checksum over the IPv6 pseudo-header and the message (RFC 4443 2.3)."""
    data = source + destination + struct.pack("!I3xB", len(message), 58) + message
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unspecified_source_solicitation() -> bytes:
    """A whole IPv6 packet: an RS from the unspecified address to all-routers, hop limit 255,
    without a link-layer address option (RFC 4861 4.1 forbids it with source ::)."""
    source = bytes(16)
    destination = _socket.inet_pton(_socket.AF_INET6, "ff02::2")
    message = struct.pack("!BBHI", ROUTER_SOLICITATION, 0, 0, 0)
    checksum = icmp6_checksum(source, destination, message)
    message = message[:2] + struct.pack("!H", checksum) + message[4:]
    header = struct.pack("!IHBB", 6 << 28, len(message), 58, 255)
    return header + source + destination + message


def eui64_address(prefix: str, mac: bytes) -> str:
    """SLAAC address: the /64 prefix and the modified EUI-64 interface id from the MAC."""
    raw = _socket.inet_pton(_socket.AF_INET6, prefix)[:8]
    iid = bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return _socket.inet_ntop(_socket.AF_INET6, raw + iid)
