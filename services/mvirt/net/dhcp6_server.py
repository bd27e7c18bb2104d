"""The DHCPv6 allocation engine: one client message in, one reply (or nothing) out.

The codec is pideisn's (:mod:`mvirt.pideisn.dhcp6_codec`). Each TAP's NIC has exactly one
/128; it is handed out in every IA_NA with infinite lifetimes. SOLICIT gets an ADVERTISE, or a
REPLY at once when the client asks for rapid commit; REQUEST, RENEW and REBIND get a REPLY with
the address; RELEASE gets a success REPLY (the address stays the NIC's); INFORMATION-REQUEST
gets DNS and NTP only. Prefix delegation is not offered (IA_PD answered NoPrefixAvail).

:func:`answer` is total: any byte string yields a reply or None, never an exception.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass

from mvirt.pideisn import dhcp6_codec as codec

log = logging.getLogger("mvirt.net.dhcp6")

INFINITE = 0xFFFFFFFF
CONFIRM = 4
DECLINE = 9
OPT_NTP_SERVER = 56
NTP_SUBOPTION_SRV_ADDR = 1
SERVER_PORT = 547
CLIENT_PORT = 546
ALL_SERVERS = "ff02::1:2"
_NEED_SERVER_ID = (codec.REQUEST, codec.RENEW, codec.RELEASE, DECLINE)


@dataclass(frozen=True)
class Binding6:
    """What the server hands out on one TAP."""

    server_duid: bytes
    address: str | None
    dns: tuple[str, ...] = ()
    ntp: tuple[str, ...] = ()


def _v6(servers: tuple[str, ...]) -> list[bytes]:
    return [
        socket.inet_pton(socket.AF_INET6, s)
        for s in servers
        if isinstance(ipaddress.ip_address(s), ipaddress.IPv6Address)
    ]


def parse(data: bytes) -> codec.Message | None:
    """A client message, or None for anything that is not one."""
    try:
        message = codec.Message.decode(data)
        message.ias()  # IA options must parse too
    except Exception:
        return None
    if message.kind not in (
        codec.SOLICIT,
        codec.REQUEST,
        CONFIRM,
        codec.RENEW,
        codec.REBIND,
        codec.RELEASE,
        DECLINE,
        codec.INFORMATION_REQUEST,
    ):
        return None
    return message


def answer(data: bytes, binding: Binding6) -> bytes | None:
    """The reply to ``data`` on a TAP whose NIC has ``binding``, or None."""
    message = parse(data)
    if message is None:
        return None
    try:
        return _answer(message, binding)
    except Exception:
        log.warning("DHCPv6 message dropped: could not be answered", exc_info=True)
        return None


def _info_options(binding: Binding6) -> list[tuple[int, bytes]]:
    options: list[tuple[int, bytes]] = []
    if dns := _v6(binding.dns):
        options.append((codec.OPT_DNS_SERVERS, b"".join(dns)))
    if ntp := _v6(binding.ntp):
        sub = [struct.pack("!HH", NTP_SUBOPTION_SRV_ADDR, 16) + raw for raw in ntp]
        options.append((OPT_NTP_SERVER, b"".join(sub)))
    return options


def _ias(message: codec.Message, binding: Binding6) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for ia in message.ias():
        if ia.kind == codec.OPT_IA_NA:
            if binding.address is None:
                reply = codec.IdentityAssociation(
                    codec.OPT_IA_NA, ia.iaid, status=codec.STATUS_NO_ADDRS_AVAIL
                )
            else:
                reply = codec.IdentityAssociation(
                    codec.OPT_IA_NA,
                    ia.iaid,
                    t1=INFINITE,
                    t2=INFINITE,
                    addresses=[codec.IaAddress(binding.address, INFINITE, INFINITE)],
                )
        else:
            reply = codec.IdentityAssociation(
                codec.OPT_IA_PD, ia.iaid, status=codec.STATUS_NO_PREFIX_AVAIL
            )
        out.append((ia.kind, reply.encode()))
    return out


def _answer(message: codec.Message, binding: Binding6) -> bytes | None:
    client_id = message.get(codec.OPT_CLIENTID)
    server_id = message.get(codec.OPT_SERVERID)
    if message.kind in _NEED_SERVER_ID and server_id != binding.server_duid:
        return None  # addressed to another server (or malformed)
    if message.kind in (codec.SOLICIT, codec.REBIND, CONFIRM) and server_id is not None:
        return None  # RFC 8415: these carry no server id
    if client_id is None and message.kind != codec.INFORMATION_REQUEST:
        return None
    head: list[tuple[int, bytes]] = []
    if client_id is not None:
        head.append((codec.OPT_CLIENTID, client_id))
    head.append((codec.OPT_SERVERID, binding.server_duid))
    kind = message.kind
    if kind == codec.INFORMATION_REQUEST:
        return codec.Message(codec.REPLY, message.xid, head + _info_options(binding)).encode()
    if kind in (codec.RELEASE, DECLINE):
        success = struct.pack("!H", codec.STATUS_SUCCESS)
        return codec.Message(
            codec.REPLY, message.xid, [*head, (codec.OPT_STATUS_CODE, success)]
        ).encode()
    if kind == CONFIRM:
        ok = binding.address is not None and all(
            a.address == binding.address for ia in message.ias() for a in ia.addresses
        )
        status = codec.STATUS_SUCCESS if ok else 4  # NotOnLink
        return codec.Message(
            codec.REPLY, message.xid, [*head, (codec.OPT_STATUS_CODE, struct.pack("!H", status))]
        ).encode()
    body = head + _ias(message, binding) + _info_options(binding)
    if kind == codec.SOLICIT:
        if message.get(codec.OPT_RAPID_COMMIT) is not None:
            return codec.Message(
                codec.REPLY, message.xid, [*body, (codec.OPT_RAPID_COMMIT, b"")]
            ).encode()
        return codec.Message(codec.ADVERTISE, message.xid, body).encode()
    return codec.Message(codec.REPLY, message.xid, body).encode()
