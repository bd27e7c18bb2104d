"""DHCPv4 messages (RFC 2131/2132) and the lease they describe, including option 121 (RFC 3442).

Decoding never trusts the packet: anything malformed raises `MalformedPacketError`, the only
exception a parser here lets out.
"""

from __future__ import annotations

import _socket
import struct

from mvirt.pideisn.dns_names import valid_domain, valid_hostname

BOOTREQUEST = 1
BOOTREPLY = 2
MAGIC = b"\x63\x82\x53\x63"
FLAG_BROADCAST = 0x8000

DISCOVER = 1
OFFER = 2
REQUEST = 3
DECLINE = 4
ACK = 5
NAK = 6
RELEASE = 7

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN = 15
OPT_MTU = 26
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMS = 55
OPT_MAX_SIZE = 57
OPT_T1 = 58
OPT_T2 = 59
OPT_CLIENT_ID = 61
OPT_CLASSLESS_ROUTES = 121
OPT_END = 255

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")


class MalformedPacketError(ValueError):
    """The bytes are not a well-formed message."""


def ip_to_bytes(address: str) -> bytes:
    """Dotted quad to 4 bytes."""
    return _socket.inet_aton(address)


def ip_from_bytes(raw: bytes) -> str:
    """4 bytes to a dotted quad."""
    return _socket.inet_ntoa(raw)


class Message:
    """A DHCPv4 message; `options` maps code to payload (repeated options concatenated)."""

    __slots__ = (
        "chaddr",
        "ciaddr",
        "flags",
        "giaddr",
        "op",
        "options",
        "secs",
        "siaddr",
        "xid",
        "yiaddr",
    )

    def __init__(
        self,
        op: int,
        xid: int,
        chaddr: bytes,
        options: dict[int, bytes],
        *,
        secs: int = 0,
        flags: int = 0,
        ciaddr: str = "0.0.0.0",
        yiaddr: str = "0.0.0.0",
        siaddr: str = "0.0.0.0",
        giaddr: str = "0.0.0.0",
    ) -> None:
        self.op = op
        self.xid = xid
        self.chaddr = chaddr
        self.options = options
        self.secs = secs
        self.flags = flags
        self.ciaddr = ciaddr
        self.yiaddr = yiaddr
        self.siaddr = siaddr
        self.giaddr = giaddr

    @property
    def message_type(self) -> int:
        """Option 53, or 0 when absent."""
        value = self.options.get(OPT_MESSAGE_TYPE, b"")
        return value[0] if len(value) == 1 else 0

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"Message(op={self.op}, type={self.message_type}, xid={self.xid:#x})"

    def encode(self) -> bytes:
        """Wire format, options in code order, padded to the BOOTP minimum of 300 bytes."""
        header = _HEADER.pack(
            self.op,
            1,
            6,
            0,
            self.xid,
            self.secs,
            self.flags,
            ip_to_bytes(self.ciaddr),
            ip_to_bytes(self.yiaddr),
            ip_to_bytes(self.siaddr),
            ip_to_bytes(self.giaddr),
            self.chaddr.ljust(16, b"\0")[:16],
            b"",
            b"",
        )
        out = bytearray(header + MAGIC)
        for code in sorted(self.options):
            value = self.options[code]
            if code in (OPT_PAD, OPT_END):
                continue
            # Long values are split across repeated options (RFC 3396).
            for start in range(0, max(len(value), 1), 255):
                chunk = value[start : start + 255]
                out += bytes((code, len(chunk))) + chunk
        out.append(OPT_END)
        return bytes(out.ljust(300, b"\0"))

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse a message; raises MalformedPacketError on anything that does not fit."""
        if len(data) < _HEADER.size + 4:
            raise MalformedPacketError(f"too short ({len(data)} bytes)")
        fields = _HEADER.unpack_from(data)
        if data[_HEADER.size : _HEADER.size + 4] != MAGIC:
            raise MalformedPacketError("no DHCP magic cookie")
        hlen = min(fields[2], 16)
        options = parse_options(data[_HEADER.size + 4 :])
        if options.get(OPT_OVERLOAD, b"\0")[:1] in (b"\1", b"\3"):
            _merge(options, parse_options(fields[13], strict_end=False))
        if options.get(OPT_OVERLOAD, b"\0")[:1] in (b"\2", b"\3"):
            _merge(options, parse_options(fields[12], strict_end=False))
        return cls(
            fields[0],
            fields[4],
            fields[11][:hlen],
            options,
            secs=fields[5],
            flags=fields[6],
            ciaddr=ip_from_bytes(fields[7]),
            yiaddr=ip_from_bytes(fields[8]),
            siaddr=ip_from_bytes(fields[9]),
            giaddr=ip_from_bytes(fields[10]),
        )


def _merge(into: dict[int, bytes], extra: dict[int, bytes]) -> None:
    for code, value in extra.items():
        into[code] = into.get(code, b"") + value


def parse_options(data: bytes, strict_end: bool = False) -> dict[int, bytes]:
    """Options up to END; repeated codes are concatenated (RFC 3396)."""
    options: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return options
        if i + 1 >= len(data):
            raise MalformedPacketError(f"option {code} has no length")
        length = data[i + 1]
        if i + 2 + length > len(data):
            raise MalformedPacketError(f"option {code} runs past the end")
        options[code] = options.get(code, b"") + data[i + 2 : i + 2 + length]
        i += 2 + length
    if strict_end:
        raise MalformedPacketError("options not terminated by END")
    return options


def encode_classless_routes(routes: list[tuple[str, int, str]]) -> bytes:
    """Option 121 payload from (destination, prefix length, gateway) tuples."""
    out = bytearray()
    for dst, length, gateway in routes:
        significant = (length + 7) // 8
        out.append(length)
        out += ip_to_bytes(dst)[:significant] + ip_to_bytes(gateway)
    return bytes(out)


def decode_classless_routes(data: bytes) -> list[tuple[str, int, str]]:
    """Option 121 payload to (destination, prefix length, gateway) tuples."""
    routes = []
    i = 0
    while i < len(data):
        length = data[i]
        if length > 32:
            raise MalformedPacketError(f"classless route with prefix length {length}")
        significant = (length + 7) // 8
        if i + 1 + significant + 4 > len(data):
            raise MalformedPacketError("classless route truncated")
        dst = data[i + 1 : i + 1 + significant].ljust(4, b"\0")
        gateway = data[i + 1 + significant : i + 5 + significant]
        routes.append((ip_from_bytes(network_bytes(dst, length)), length, ip_from_bytes(gateway)))
        i += 5 + significant
    return routes


def network_bytes(raw: bytes, prefixlen: int) -> bytes:
    """`raw` with the host bits beyond `prefixlen` cleared."""
    value = int.from_bytes(raw, "big")
    bits = len(raw) * 8
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1) if prefixlen else 0
    return (value & mask).to_bytes(len(raw), "big")


def mask_to_prefixlen(mask: bytes) -> int:
    """255.255.255.0 → 24; a non-contiguous mask raises MalformedPacketError."""
    value = int.from_bytes(mask, "big")
    length = bin(value).count("1")
    if value != ((1 << 32) - 1) ^ ((1 << (32 - length)) - 1):
        raise MalformedPacketError(f"non-contiguous subnet mask {ip_from_bytes(mask)}")
    return length


def _addresses(value: bytes) -> list[str]:
    if len(value) % 4:
        raise MalformedPacketError("address list not a multiple of 4 bytes")
    return [ip_from_bytes(value[i : i + 4]) for i in range(0, len(value), 4)]


def _u32(value: bytes | None) -> int | None:
    if value is None:
        return None
    if len(value) != 4:
        raise MalformedPacketError("32-bit option of the wrong size")
    return int.from_bytes(value, "big")


class Lease:
    """What an ACK grants: address, prefix, routes, DNS and timers (seconds)."""

    __slots__ = (
        "address",
        "dns",
        "domain",
        "hostname",
        "lease_time",
        "mtu",
        "prefixlen",
        "routers",
        "routes",
        "server_id",
        "t1",
        "t2",
    )

    def __init__(self, message: Message) -> None:
        opts = message.options
        self.address = message.yiaddr
        mask = opts.get(OPT_SUBNET_MASK)
        if mask is not None and len(mask) != 4:
            raise MalformedPacketError("subnet mask of the wrong size")
        self.prefixlen = mask_to_prefixlen(mask) if mask else _classful_prefix(self.address)
        self.routers = _addresses(opts.get(OPT_ROUTER, b""))
        self.dns = _addresses(opts.get(OPT_DNS, b""))
        # Names reach /etc/resolv.conf and the hostname: anything but a valid DNS name is
        # dropped here, so a hostile server cannot inject lines (e.g. "lab\nnameserver ...").
        self.hostname = valid_hostname(opts.get(OPT_HOSTNAME, b""))
        self.domain = valid_domain(opts.get(OPT_DOMAIN, b""))
        lease_time = _u32(opts.get(OPT_LEASE_TIME))
        self.lease_time = 0xFFFFFFFF if lease_time is None else lease_time
        self.t1, self.t2 = _timers(self.lease_time, _u32(opts.get(OPT_T1)), _u32(opts.get(OPT_T2)))
        mtu = opts.get(OPT_MTU)
        self.mtu = int.from_bytes(mtu, "big") if mtu and len(mtu) == 2 else None
        if self.mtu is not None and self.mtu < MIN_MTU:
            self.mtu = None
        server = opts.get(OPT_SERVER_ID)
        self.server_id = ip_from_bytes(server) if server and len(server) == 4 else None
        routes = opts.get(OPT_CLASSLESS_ROUTES)
        self.routes = decode_classless_routes(routes) if routes else []

    def __repr__(self) -> str:
        return f"Lease({self.address}/{self.prefixlen}, routers={self.routers})"

    def unusable(self) -> str | None:
        """Why this lease cannot be applied, or None when it can."""
        if self.lease_time == 0:
            return "lease time 0"
        if self.prefixlen == 0:
            return "subnet mask 0.0.0.0"
        raw = int.from_bytes(ip_to_bytes(self.address), "big")
        first = raw >> 24
        if raw == 0 or first in (0, 127) or first >= 224:
            return f"address {self.address} is not a unicast host address"
        if self.prefixlen < 31:
            host = raw & ((1 << (32 - self.prefixlen)) - 1)
            if host in (0, (1 << (32 - self.prefixlen)) - 1):
                return f"address {self.address} is the network or broadcast address of its subnet"
        return None


INFINITE = 0xFFFFFFFF
MIN_MTU = 68  # RFC 2132 5.1


def _timers(lease_time: int, t1: int | None, t2: int | None) -> tuple[float, float]:
    """T1 and T2 with 0 < T1 < T2 < lease enforced (RFC 2131 4.4.5): values that break the
    order are replaced by the defaults, 0.5 and 0.875 of the lease."""
    if lease_time == INFINITE:
        return float(INFINITE), float(INFINITE)
    valid_t2 = t2 is not None and 0 < t2 < lease_time
    t2_out = float(t2) if t2 is not None and valid_t2 else lease_time * 0.875
    valid_t1 = t1 is not None and 0 < t1 < t2_out
    t1_out = float(t1) if t1 is not None and valid_t1 else min(lease_time * 0.5, t2_out * 4 / 7)
    return t1_out, t2_out


def _classful_prefix(address: str) -> int:
    first = ip_to_bytes(address)[0]
    return 8 if first < 128 else 16 if first < 192 else 24
