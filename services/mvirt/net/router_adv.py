"""Router advertisements: what mvirt-net announces on each TAP, and the total parse of a
router solicitation.

The RA makes fe80::1 the default router (M=1: addresses come from DHCPv6; O=1: other
configuration too) and lists the network's IPv6 DNS servers (RDNSS). It carries no prefix
information: the network is routed, a guest owns only its /128, and an on-link prefix would
make guests resolve their peers by neighbour discovery on a link where no peer is.
"""

from __future__ import annotations

from mvirt.pideisn import ndp_codec

ROUTER_LIFETIME = 1800
DNS_LIFETIME = 1800
ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
MIN_INTERVAL = 60.0
MAX_INTERVAL = 180.0


def advertisement(dns: tuple[str, ...], has_ipv6: bool = True) -> bytes:
    """The RA payload (ICMPv6; the kernel fills in the checksum). A NIC without an IPv6
    address gets neither M (a client would wait for a DHCPv6 address that never comes) nor
    a default router (router lifetime 0)."""
    ra = ndp_codec.RouterAdvertisement(
        flags=(ndp_codec.FLAG_MANAGED if has_ipv6 else 0) | ndp_codec.FLAG_OTHER,
        lifetime=ROUTER_LIFETIME if has_ipv6 else 0,
        hop_limit=64,
        dns=[s for s in dns if ":" in s],
        dns_lifetime=DNS_LIFETIME,
    )
    return ra.encode()


def is_solicitation(data: bytes) -> bool:
    """True for a well-formed router solicitation (type 133, code 0); never raises."""
    return len(data) >= 8 and data[0] == ndp_codec.ROUTER_SOLICITATION and data[1] == 0
