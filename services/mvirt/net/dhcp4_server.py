"""The DHCPv4 allocation engine: one request in, one reply (or nothing) out.

The codec is the one pideisn's client uses (:mod:`mvirt.pideisn.dhcp4_codec`, standard library
only). The "lease store" is the NIC table: each TAP belongs to one NIC, whose /32 is the only
address ever offered on it, with an infinite lease, a /32 mask, and classless static routes
(169.254.0.1 on-link, default via 169.254.0.1) so that common clients reach the gateway.
Only the NIC's own MAC is answered: a request whose client hardware address (chaddr) is
another one gets nothing (the link-layer source is checked by nftables before the socket).

:func:`answer` is total: any byte string yields a reply or None, never an exception.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from mvirt.net.model import GATEWAY_V4
from mvirt.pideisn import dhcp4_codec as codec

log = logging.getLogger("mvirt.net.dhcp4")

INFINITE = 0xFFFFFFFF
OPT_NTP = 42
INFORM = 8
SERVER_PORT = 67
CLIENT_PORT = 68
_GATEWAY = str(GATEWAY_V4)


@dataclass(frozen=True)
class Binding4:
    """What the server hands out on one TAP."""

    address: str
    client_mac: bytes
    """The NIC's MAC: the only client hardware address answered."""
    dns: tuple[str, ...] = ()
    ntp: tuple[str, ...] = ()


def _v4(servers: tuple[str, ...]) -> bytes:
    return b"".join(
        codec.ip_to_bytes(s)
        for s in servers
        if isinstance(ipaddress.ip_address(s), ipaddress.IPv4Address)
    )


def _config_options(binding: Binding4, kind: int) -> dict[int, bytes]:
    options = {
        codec.OPT_MESSAGE_TYPE: bytes((kind,)),
        codec.OPT_SERVER_ID: codec.ip_to_bytes(_GATEWAY),
        codec.OPT_SUBNET_MASK: codec.ip_to_bytes("255.255.255.255"),
        codec.OPT_ROUTER: codec.ip_to_bytes(_GATEWAY),
        codec.OPT_CLASSLESS_ROUTES: codec.encode_classless_routes(
            [(_GATEWAY, 32, "0.0.0.0"), ("0.0.0.0", 0, _GATEWAY)]
        ),
    }
    if dns := _v4(binding.dns):
        options[codec.OPT_DNS] = dns
    if ntp := _v4(binding.ntp):
        options[OPT_NTP] = ntp
    return options


def parse(data: bytes) -> codec.Message | None:
    """A client request, or None for anything that is not one."""
    try:
        message = codec.Message.decode(data)
    except Exception:
        return None
    if message.op != codec.BOOTREQUEST or message.message_type == 0:
        return None
    return message


def _for_client(request: codec.Message, binding: Binding4) -> bool:
    """True if ``request`` names the NIC's own MAC as chaddr (hlen 6, the same six bytes)."""
    return request.chaddr == binding.client_mac


def answer(data: bytes, binding: Binding4 | None) -> bytes | None:
    """The reply to the request ``data`` on a TAP whose NIC has ``binding`` (None: the NIC
    has no IPv4), or None when nothing is to be sent."""
    request = parse(data)
    if request is None:
        return None
    try:
        return _answer(request, binding)
    except Exception:
        log.warning("DHCPv4 request dropped: could not be answered", exc_info=True)
        return None


def _reply(request: codec.Message, options: dict[int, bytes], yiaddr: str) -> bytes:
    return codec.Message(
        codec.BOOTREPLY,
        request.xid,
        request.chaddr,
        options,
        flags=request.flags,
        yiaddr=yiaddr,
        giaddr=request.giaddr,
    ).encode()


def _answer(request: codec.Message, binding: Binding4 | None) -> bytes | None:
    if binding is not None and not _for_client(request, binding):
        return None  # another MAC: no lease, no NAK, nothing a foreign client can use
    kind = request.message_type
    server_id = request.options.get(codec.OPT_SERVER_ID)
    if server_id is not None and server_id != codec.ip_to_bytes(_GATEWAY):
        return None  # the client talks to another server
    if kind == codec.DISCOVER:
        if binding is None:
            return None
        options = _config_options(binding, codec.OFFER)
        options[codec.OPT_LEASE_TIME] = INFINITE.to_bytes(4, "big")
        return _reply(request, options, binding.address)
    if kind == codec.REQUEST:
        wanted_raw = request.options.get(codec.OPT_REQUESTED_IP)
        wanted = (
            codec.ip_from_bytes(wanted_raw)
            if wanted_raw is not None and len(wanted_raw) == 4
            else request.ciaddr
        )
        if binding is None or wanted != binding.address:
            nak = {
                codec.OPT_MESSAGE_TYPE: bytes((codec.NAK,)),
                codec.OPT_SERVER_ID: codec.ip_to_bytes(_GATEWAY),
            }
            return _reply(request, nak, "0.0.0.0")
        options = _config_options(binding, codec.ACK)
        options[codec.OPT_LEASE_TIME] = INFINITE.to_bytes(4, "big")
        return _reply(request, options, binding.address)
    if kind == INFORM:
        if binding is None:
            return None
        return _reply(request, _config_options(binding, codec.ACK), "0.0.0.0")
    if kind == codec.DECLINE:
        log.warning(
            "a guest declined its address: another host uses it",
            extra={"address": binding.address if binding else None},
        )
    return None  # RELEASE (the lease is the NIC's for life), DECLINE, unknown types
