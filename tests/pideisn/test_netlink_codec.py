"""rtnetlink framing and attribute parsing, including fuzzing of the parsers."""

import _socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from mvirt.pideisn import netlink as nl


def test_attribute_round_trip_with_padding():
    data = nl.encode_attr(nl.IFLA_IFNAME, b"eth0\0") + nl.encode_attr(nl.IFLA_MTU, b"\0\0\5\xdc")
    assert len(data) % 4 == 0
    assert nl.parse_attrs(data) == {nl.IFLA_IFNAME: b"eth0\0", nl.IFLA_MTU: b"\0\0\5\xdc"}


def test_messages_are_split_by_length():
    data = nl.encode_message(nl.RTM_NEWLINK, 0, 1, b"abcd") + nl.encode_message(3, 2, 1, b"")
    assert nl.parse_messages(data) == [(nl.RTM_NEWLINK, 0, 1, b"abcd"), (3, 2, 1, b"")]


def test_link_and_address_decoding():
    body = struct.pack("=BxHiII", 0, nl.ARPHRD_ETHER, 2, nl.IFF_UP, 0)
    body += nl.encode_attr(nl.IFLA_IFNAME, b"eth0\0") + nl.encode_attr(nl.IFLA_ADDRESS, b"\1" * 6)
    link = nl.decode_link(body)
    assert link is not None
    assert (link.index, link.name, link.mac, link.is_loopback) == (2, "eth0", b"\1" * 6, False)
    raw = _socket.inet_pton(_socket.AF_INET6, "fe80::1")
    body = struct.pack("=BBBBi", _socket.AF_INET6, 64, nl.IFA_F_TENTATIVE, 253, 2)
    body += nl.encode_attr(nl.IFA_ADDRESS, raw)
    address = nl.decode_address(body)
    assert address is not None
    assert (address.address, address.prefixlen, address.flags) == ("fe80::1", 64, 0x40)


def test_address_of_the_wrong_size_is_skipped():
    body = struct.pack("=BBBBi", _socket.AF_INET, 24, 0, 0, 2) + nl.encode_attr(nl.IFA_LOCAL, b"1")
    assert nl.decode_address(body) is None


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_fuzz_parsers_never_raise(data):
    nl.parse_attrs(data)
    for _kind, _flags, _seq, body in nl.parse_messages(data):
        nl.decode_link(body)
        nl.decode_address(body)
    nl.decode_link(data)
    nl.decode_address(data)


def test_address_of_an_unknown_family_is_skipped():
    # AF_MCTP (45) addresses come in RTM_NEWADDR dumps too; 16 bytes made inet_ntop raise.
    body = struct.pack("=BBBBi", 45, 8, 0, 0, 2) + nl.encode_attr(nl.IFA_LOCAL, b"\1" * 16)
    assert nl.decode_address(body) is None
    body = struct.pack("=BBBBi", 0, 8, 0, 0, 2) + nl.encode_attr(nl.IFA_ADDRESS, b"\1" * 4)
    assert nl.decode_address(body) is None


def test_truncated_error_message_is_an_error_not_a_crash():
    assert nl.decode_error(b"") < 0
    assert nl.decode_error(struct.pack("=i", 0) + b"\0" * 16) == 0
    assert nl.decode_error(struct.pack("=i", -17)) == -17


attributes = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6).map(
    lambda attrs: b"".join(nl.encode_attr(kind, data) for kind, data in attrs)
)

address_messages = st.builds(
    lambda family, prefixlen, flags, scope, index, attrs: (
        struct.pack("=BBBBi", family, prefixlen, flags, scope, index) + attrs
    ),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(-(2**31), 2**31 - 1),
    attributes,
)

link_messages = st.builds(
    lambda family, kind, index, flags, change, attrs: (
        struct.pack("=BxHiII", family, kind, index, flags, change) + attrs
    ),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    attributes,
)


TYPES = [nl.RTM_NEWADDR, nl.RTM_NEWLINK, nl.NLMSG_ERROR]


@settings(max_examples=500)
@given(st.lists(st.one_of(address_messages, link_messages), max_size=4), st.integers(0, 0xFFFF))
def test_fuzz_kernel_shaped_dumps_never_raise(bodies, kind):
    # Well-framed messages of the shapes the kernel sends, with any family, flags and
    # attributes (including ones of the wrong size): decoding is total.
    data = b"".join(
        nl.encode_message(t, nl.NLM_F_MULTI, 1, body)
        for t, body in zip([*TYPES, kind], bodies, strict=False)
    )
    for mkind, _flags, _seq, body in nl.parse_messages(data):
        address = nl.decode_address(body)
        link = nl.decode_link(body)
        nl.decode_error(body)
        if address is not None:
            assert address.family in (_socket.AF_INET, _socket.AF_INET6)
        if link is not None:
            assert isinstance(link.name, str)
        assert mkind >= 0
