"""Router advertisement codec, SLAAC addresses, and fuzzing of the parser."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvirt.pideisn import ndp_codec as codec


def test_router_advertisement_round_trip():
    ra = codec.RouterAdvertisement(
        flags=codec.FLAG_MANAGED | codec.FLAG_OTHER,
        lifetime=1800,
        prefixes=[
            codec.PrefixInfo(
                "2001:db8:1::", 64, codec.PREFIX_ON_LINK | codec.PREFIX_AUTONOMOUS, 86400, 14400
            )
        ],
        dns=["2001:db8::53", "2001:db8::54"],
        dns_lifetime=600,
        mtu=1400,
        source_mac=bytes.fromhex("525400aabbcc"),
    )
    assert codec.RouterAdvertisement.decode(ra.encode()) == ra


def test_eui64_address_flips_universal_local_bit():
    mac = bytes.fromhex("525400123456")
    assert codec.eui64_address("fec0::", mac) == "fec0::5054:ff:fe12:3456"


def test_router_solicitation_carries_source_link_layer_address():
    mac = bytes.fromhex("525400123456")
    rs = codec.encode_router_solicitation(mac)
    assert rs[0] == codec.ROUTER_SOLICITATION
    assert rs[8:10] == bytes((1, 1)) and rs[10:16] == mac


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes((133,)) + b"\0" * 15,
        bytes((134, 0)) + b"\0" * 14 + bytes((3, 0)) + b"\0" * 6,
        bytes((134, 0)) + b"\0" * 14 + bytes((3, 4)) + b"\0" * 6,
    ],
)
def test_malformed_advertisements_are_rejected(data):
    with pytest.raises(codec.MalformedPacketError):
        codec.RouterAdvertisement.decode(data)


def test_a_broken_option_is_skipped_and_the_rest_of_the_ra_counts():
    good = codec.PrefixInfo("2001:db8:1::", 64, codec.PREFIX_AUTONOMOUS, 600, 300)
    ra = codec.RouterAdvertisement(lifetime=60, prefixes=[good], mtu=1400).encode()
    bad_length = bytes((codec.OPT_PREFIX_INFO, 4, 129)) + b"\0" * 29  # prefix length 129
    bad_size = bytes((codec.OPT_PREFIX_INFO, 1)) + b"\0" * 6
    bad_rdnss = bytes((25, 1)) + b"\0" * 6
    decoded = codec.RouterAdvertisement.decode(ra + bad_length + bad_size + bad_rdnss)
    assert decoded.prefixes == [good]
    assert (decoded.lifetime, decoded.mtu, decoded.dns) == (60, 1400, [])


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_fuzz_random_options_never_escape(options):
    header = codec.RouterAdvertisement(lifetime=60).encode()
    for data in (header + options, (header + options)[: len(options) // 2], header + options * 40):
        with contextlib.suppress(codec.MalformedPacketError):
            codec.RouterAdvertisement.decode(data)
