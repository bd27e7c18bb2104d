"""Router advertisement lifetimes owned by pideisn (accept_ra=0), on a manual clock."""

from typing import cast

from mvirt.pideisn import ndp_codec as codec
from mvirt.pideisn import netlink as nl
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.ra_config import RaConfig

from .clock import ManualClock
from .fake_netlink import FakeNetlink

MAC = bytes.fromhex("525400123456")
ROUTER = "fe80::1"
ADDRESS = "2001:db8:1:0:5054:ff:fe12:3456"
BOTH = codec.PREFIX_ON_LINK | codec.PREFIX_AUTONOMOUS


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.loop = Loop(self.clock)
        self.netlink = FakeNetlink()
        self.changes = 0
        self.config = RaConfig(
            self.loop,
            cast(nl.Netlink, self.netlink),
            "eth0",
            2,
            MAC,
            on_change=self._changed,
        )

    def _changed(self) -> None:
        self.changes += 1

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.loop.fire_due()

    def ra(self, *, lifetime=1800, prefixes=(), dns=(), dns_lifetime=0, mtu=None) -> None:
        ra = codec.RouterAdvertisement(
            lifetime=lifetime,
            prefixes=list(prefixes),
            dns=list(dns),
            dns_lifetime=dns_lifetime,
            mtu=mtu,
        )
        self.config.apply(ra, ROUTER)


def prefix(name="2001:db8:1::", flags=BOTH, valid=600, preferred=300, length=64):
    return codec.PrefixInfo(name, length, flags, valid, preferred)


def test_every_lifetime_expires_when_the_router_falls_silent():
    h = Harness()
    h.ra(
        lifetime=30,
        prefixes=[prefix(valid=60, preferred=20)],
        dns=["2001:db8::53"],
        dns_lifetime=45,
    )
    assert ("::", 0, ROUTER) in h.netlink.routes
    assert ("2001:db8:1::", 64, None) in h.netlink.routes
    assert ADDRESS in h.netlink.addresses_added
    assert h.config.dns == ["2001:db8::53"]
    h.advance(29.9)
    assert h.config.routers == [ROUTER]
    h.advance(0.2)  # router lifetime over
    assert h.config.routers == [] and ("::", 0, ROUTER) not in h.netlink.routes
    changes = h.changes
    h.advance(15)  # RDNSS lifetime over: resolv.conf is rewritten without it
    assert h.config.dns == [] and h.changes == changes + 1
    h.advance(15)  # valid lifetime over: address and on-link route go
    assert ADDRESS not in h.netlink.addresses_added
    assert ("2001:db8:1::", 64, None) not in h.netlink.routes
    assert h.config.addresses == [] and h.config.on_link == []


def test_router_lifetime_zero_withdraws_the_default_route():
    h = Harness()
    h.ra(lifetime=1800)
    h.ra(lifetime=0)
    assert h.config.routers == [] and ("::", 0, ROUTER) not in h.netlink.routes


def test_two_hour_rule_protects_an_address_from_a_short_lifetime():
    h = Harness()
    h.ra(prefixes=[prefix(valid=86400, preferred=3600)])
    h.ra(prefixes=[prefix(valid=60, preferred=30)])  # a spoofed RA trying to cut it short
    remaining = h.config.remaining("address", ADDRESS)
    assert remaining == 7200  # reset to two hours, not 60 s
    assert h.netlink.addresses_added[ADDRESS][1] == 7200
    h.advance(7000)
    h.ra(prefixes=[prefix(valid=60, preferred=30)])  # under two hours left: ignored
    assert h.config.remaining("address", ADDRESS) == 200
    h.ra(prefixes=[prefix(valid=9000, preferred=30)])  # more than two hours: taken
    assert h.config.remaining("address", ADDRESS) == 9000


def test_a_lifetime_longer_than_what_is_left_is_always_taken():
    h = Harness()
    h.ra(prefixes=[prefix(valid=600, preferred=300)])
    h.advance(500)
    h.ra(prefixes=[prefix(valid=900, preferred=300)])
    assert h.config.remaining("address", ADDRESS) == 900


def test_each_prefix_is_applied_on_its_own():
    h = Harness()
    h.netlink.refuse.add(ADDRESS)
    other = prefix(name="2001:db8:2::")
    h.ra(prefixes=[prefix(), other, prefix(name="fe80::"), prefix(valid=10, preferred=20)])
    assert h.config.addresses == ["2001:db8:2:0:5054:ff:fe12:3456/64"]
    assert h.config.routers == [ROUTER]


def test_mtu_is_applied_unless_below_the_ipv6_minimum():
    h = Harness()
    h.ra(mtu=1000)
    assert h.netlink.mtu is None
    h.ra(mtu=1400)
    assert h.netlink.mtu == 1400
