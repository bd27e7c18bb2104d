"""DHCPv6 messages (RFC 8415): client/server ids, IA_NA with addresses, IA_PD with prefixes,
status codes, DNS servers and search list.

Decoding raises only `MalformedPacketError`; unknown options are kept as raw bytes.
"""

from __future__ import annotations

import _socket
import struct

from mvirt.pideisn.dns_names import labels_ok

SOLICIT = 1
ADVERTISE = 2
REQUEST = 3
RENEW = 5
REBIND = 6
REPLY = 7
RELEASE = 8
INFORMATION_REQUEST = 11

OPT_CLIENTID = 1
OPT_SERVERID = 2
OPT_IA_NA = 3
OPT_IAADDR = 5
OPT_ORO = 6
OPT_PREFERENCE = 7
OPT_ELAPSED_TIME = 8
OPT_STATUS_CODE = 13
OPT_RAPID_COMMIT = 14
OPT_DNS_SERVERS = 23
OPT_DOMAIN_LIST = 24
OPT_IA_PD = 25
OPT_IAPREFIX = 26
OPT_INFORMATION_REFRESH_TIME = 32
OPT_SOL_MAX_RT = 82
OPT_INF_MAX_RT = 83

STATUS_SUCCESS = 0
STATUS_NO_ADDRS_AVAIL = 2
STATUS_NO_BINDING = 3
STATUS_NO_PREFIX_AVAIL = 6

_IA = struct.Struct("!III")
_IAADDR = struct.Struct("!16sII")
_IAPREFIX = struct.Struct("!IIB16s")


class MalformedPacketError(ValueError):
    """The bytes are not a well-formed DHCPv6 message."""


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    """Options in the given order."""
    return b"".join(struct.pack("!HH", code, len(value)) + value for code, value in options)


def decode_options(data: bytes) -> list[tuple[int, bytes]]:
    """Options in wire order; truncation raises MalformedPacketError."""
    out = []
    i = 0
    while i < len(data):
        if i + 4 > len(data):
            raise MalformedPacketError("option header truncated")
        code, length = struct.unpack_from("!HH", data, i)
        if i + 4 + length > len(data):
            raise MalformedPacketError(f"option {code} runs past the end")
        out.append((code, data[i + 4 : i + 4 + length]))
        i += 4 + length
    return out


class IaAddress:
    """An address inside an IA_NA."""

    __slots__ = ("address", "preferred", "valid")

    def __init__(self, address: str, preferred: int, valid: int) -> None:
        self.address = address
        self.preferred = preferred
        self.valid = valid

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IaAddress) and (
            self.address,
            self.preferred,
            self.valid,
        ) == (other.address, other.preferred, other.valid)

    def __repr__(self) -> str:
        return f"IaAddress({self.address}, valid={self.valid})"


class IaPrefix:
    """A delegated prefix inside an IA_PD."""

    __slots__ = ("preferred", "prefix", "prefixlen", "valid")

    def __init__(self, prefix: str, prefixlen: int, preferred: int, valid: int) -> None:
        self.prefix = prefix
        self.prefixlen = prefixlen
        self.preferred = preferred
        self.valid = valid

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IaPrefix) and (
            self.prefix,
            self.prefixlen,
            self.preferred,
            self.valid,
        ) == (other.prefix, other.prefixlen, other.preferred, other.valid)

    def __repr__(self) -> str:
        return f"IaPrefix({self.prefix}/{self.prefixlen}, valid={self.valid})"


class IdentityAssociation:
    """An IA_NA (addresses) or IA_PD (prefixes) with its timers and status."""

    __slots__ = ("addresses", "iaid", "kind", "prefixes", "status", "t1", "t2")

    def __init__(
        self,
        kind: int,
        iaid: int,
        *,
        t1: int = 0,
        t2: int = 0,
        addresses: list[IaAddress] | None = None,
        prefixes: list[IaPrefix] | None = None,
        status: int = STATUS_SUCCESS,
    ) -> None:
        self.kind = kind
        self.iaid = iaid
        self.t1 = t1
        self.t2 = t2
        self.addresses = addresses or []
        self.prefixes = prefixes or []
        self.status = status

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdentityAssociation):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"IA({self.kind}, {self.addresses or self.prefixes}, status={self.status})"

    def encode(self) -> bytes:
        """The option payload (without the option header)."""
        inner: list[tuple[int, bytes]] = []
        for addr in self.addresses:
            raw = _socket.inet_pton(_socket.AF_INET6, addr.address)
            inner.append((OPT_IAADDR, _IAADDR.pack(raw, addr.preferred, addr.valid)))
        for pfx in self.prefixes:
            raw = _socket.inet_pton(_socket.AF_INET6, pfx.prefix)
            inner.append(
                (OPT_IAPREFIX, _IAPREFIX.pack(pfx.preferred, pfx.valid, pfx.prefixlen, raw))
            )
        if self.status != STATUS_SUCCESS:
            inner.append((OPT_STATUS_CODE, struct.pack("!H", self.status)))
        return _IA.pack(self.iaid, self.t1, self.t2) + encode_options(inner)

    @classmethod
    def decode(cls, kind: int, data: bytes) -> IdentityAssociation:
        """Parse an IA_NA or IA_PD payload."""
        if len(data) < _IA.size:
            raise MalformedPacketError("IA truncated")
        iaid, t1, t2 = _IA.unpack_from(data)
        ia = cls(kind, iaid, t1=t1, t2=t2)
        for code, value in decode_options(data[_IA.size :]):
            if code == OPT_IAADDR and kind == OPT_IA_NA:
                if len(value) < _IAADDR.size:
                    raise MalformedPacketError("IAADDR truncated")
                raw, preferred, valid = _IAADDR.unpack_from(value)
                _check_status(value[_IAADDR.size :])
                address = _socket.inet_ntop(_socket.AF_INET6, raw)
                ia.addresses.append(IaAddress(address, preferred, valid))
            elif code == OPT_IAPREFIX and kind == OPT_IA_PD:
                if len(value) < _IAPREFIX.size:
                    raise MalformedPacketError("IAPREFIX truncated")
                preferred, valid, length, raw = _IAPREFIX.unpack_from(value)
                if length > 128:
                    raise MalformedPacketError(f"delegated prefix length {length}")
                _check_status(value[_IAPREFIX.size :])
                prefix = _socket.inet_ntop(_socket.AF_INET6, raw)
                ia.prefixes.append(IaPrefix(prefix, length, preferred, valid))
            elif code == OPT_STATUS_CODE:
                ia.status = decode_status(value)[0]
        return ia


def _check_status(suboptions: bytes) -> None:
    decode_options(suboptions)


def decode_status(value: bytes) -> tuple[int, str]:
    """A status code option: (code, message)."""
    if len(value) < 2:
        raise MalformedPacketError("status code truncated")
    return struct.unpack_from("!H", value)[0], value[2:].decode(errors="replace")


def decode_domains(value: bytes) -> list[str]:
    """A DNS wire-format name list (RFC 1035 3.1, no compression)."""
    names = []
    labels: list[str] = []
    i = 0
    while i < len(value):
        length = value[i]
        if length == 0:
            names.append(".".join(labels))
            labels = []
            i += 1
            continue
        if length > 63 or i + 1 + length > len(value):
            raise MalformedPacketError("bad domain name label")
        labels.append(value[i + 1 : i + 1 + length].decode(errors="replace"))
        i += 1 + length
    if labels:
        raise MalformedPacketError("domain name not terminated")
    return names


def encode_domains(names: list[str]) -> bytes:
    """Names to DNS wire format."""
    out = bytearray()
    for name in names:
        for label in name.strip(".").split("."):
            if label:
                out += bytes((len(label),)) + label.encode()
        out.append(0)
    return bytes(out)


class Message:
    """A DHCPv6 client/server message."""

    __slots__ = ("kind", "options", "xid")

    def __init__(self, kind: int, xid: int, options: list[tuple[int, bytes]]) -> None:
        self.kind = kind
        self.xid = xid
        self.options = options

    __hash__ = None  # type: ignore[assignment]  # mutable: compared, never hashed

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.kind, self.xid, self.options) == (other.kind, other.xid, other.options)

    def __repr__(self) -> str:
        return f"Message(kind={self.kind}, xid={self.xid:#x})"

    def encode(self) -> bytes:
        """Wire format."""
        return bytes((self.kind,)) + self.xid.to_bytes(3, "big") + encode_options(self.options)

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Parse a message; raises MalformedPacketError."""
        if len(data) < 4:
            raise MalformedPacketError("message too short")
        return cls(data[0], int.from_bytes(data[1:4], "big"), decode_options(data[4:]))

    def get(self, code: int) -> bytes | None:
        """The first option with `code`, or None."""
        for ocode, value in self.options:
            if ocode == code:
                return value
        return None

    def ias(self) -> list[IdentityAssociation]:
        """Every IA_NA and IA_PD in the message."""
        return [
            IdentityAssociation.decode(code, value)
            for code, value in self.options
            if code in (OPT_IA_NA, OPT_IA_PD)
        ]

    def status(self) -> int:
        """The top-level status code (success when absent)."""
        value = self.get(OPT_STATUS_CODE)
        return STATUS_SUCCESS if value is None else decode_status(value)[0]

    def dns_servers(self) -> list[str]:
        """Option 23."""
        value = self.get(OPT_DNS_SERVERS) or b""
        if len(value) % 16:
            raise MalformedPacketError("DNS server list not a multiple of 16 bytes")
        return [
            _socket.inet_ntop(_socket.AF_INET6, value[i : i + 16]) for i in range(0, len(value), 16)
        ]

    def domains(self) -> list[str]:
        """Option 24: the valid DNS names in it (anything else could inject into resolv.conf)."""
        value = self.get(OPT_DOMAIN_LIST)
        try:
            names = decode_domains(value) if value else []
        except MalformedPacketError:
            return []
        return [name for name in names if labels_ok(name)]


def duid_ll(mac: bytes) -> bytes:
    """DUID-LL (type 3) for an Ethernet MAC: stable across reboots without any state on disk."""
    return struct.pack("!HH", 3, 1) + mac[:6]
