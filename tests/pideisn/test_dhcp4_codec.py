"""DHCPv4 message codec: round trips, option 121, and fuzzing of the parser."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvirt.pideisn import dhcp4_codec as codec

MAC = bytes.fromhex("525400123456")


def ack(options: dict[int, bytes], yiaddr: str = "10.0.2.15") -> codec.Message:
    options = {codec.OPT_MESSAGE_TYPE: bytes((codec.ACK,)), **options}
    return codec.Message(codec.BOOTREPLY, 0x1234, MAC, options, yiaddr=yiaddr)


def test_message_round_trip_keeps_every_field():
    message = codec.Message(
        codec.BOOTREQUEST,
        0xDEADBEEF,
        MAC,
        {codec.OPT_MESSAGE_TYPE: b"\x01", codec.OPT_HOSTNAME: b"vm"},
        secs=3,
        flags=codec.FLAG_BROADCAST,
        ciaddr="1.2.3.4",
        yiaddr="5.6.7.8",
        siaddr="9.10.11.12",
        giaddr="13.14.15.16",
    )
    assert codec.Message.decode(message.encode()) == message
    assert message.message_type == codec.DISCOVER


def test_encoding_pads_to_bootp_minimum_and_ends_options():
    data = codec.Message(codec.BOOTREQUEST, 1, MAC, {codec.OPT_MESSAGE_TYPE: b"\x01"}).encode()
    assert len(data) == 300
    assert data[236:240] == codec.MAGIC
    assert data[240:244] == bytes((53, 1, 1, 255))


def test_long_option_is_split_and_concatenated_back():
    value = bytes(range(256)) * 2
    message = codec.Message(codec.BOOTREPLY, 1, MAC, {codec.OPT_CLASSLESS_ROUTES: value})
    assert codec.Message.decode(message.encode()).options[codec.OPT_CLASSLESS_ROUTES] == value


def test_lease_reads_subnet_router_dns_hostname_and_timers():
    lease = codec.Lease(
        ack(
            {
                codec.OPT_SUBNET_MASK: codec.ip_to_bytes("255.255.255.0"),
                codec.OPT_ROUTER: codec.ip_to_bytes("10.0.2.2"),
                codec.OPT_DNS: codec.ip_to_bytes("10.0.2.3") + codec.ip_to_bytes("1.1.1.1"),
                codec.OPT_HOSTNAME: b"guest",
                codec.OPT_LEASE_TIME: (86400).to_bytes(4, "big"),
                codec.OPT_SERVER_ID: codec.ip_to_bytes("10.0.2.2"),
            }
        )
    )
    assert (lease.address, lease.prefixlen) == ("10.0.2.15", 24)
    assert lease.routers == ["10.0.2.2"]
    assert lease.dns == ["10.0.2.3", "1.1.1.1"]
    assert lease.hostname == "guest"
    assert (lease.lease_time, lease.t1, lease.t2) == (86400, 43200, 75600)
    assert lease.server_id == "10.0.2.2"


def test_classless_routes_round_trip_with_rfc3442_example_widths():
    routes = [("0.0.0.0", 0, "10.0.0.1"), ("10.0.0.0", 8, "10.0.0.2"), ("10.17.0.0", 16, "0.0.0.0")]
    routes += [("192.168.1.0", 24, "10.0.0.3"), ("192.168.1.5", 32, "10.0.0.4")]
    encoded = codec.encode_classless_routes(routes)
    # RFC 3442: width byte plus only the significant octets of the destination.
    assert encoded[:5] == bytes((0, 10, 0, 0, 1))
    assert codec.decode_classless_routes(encoded) == routes


def test_classless_route_host_bits_are_cleared():
    data = bytes((24, 192, 168, 1, 10, 0, 0, 1))
    assert codec.decode_classless_routes(data) == [("192.168.1.0", 24, "10.0.0.1")]


@pytest.mark.parametrize(
    "data", [bytes((33,)) + b"\0" * 8, bytes((24, 1, 2)), bytes((8, 10, 1, 2, 3))]
)
def test_bad_classless_routes_are_rejected(data):
    with pytest.raises(codec.MalformedPacketError):
        codec.decode_classless_routes(data)


def test_non_contiguous_mask_is_rejected():
    with pytest.raises(codec.MalformedPacketError, match="non-contiguous"):
        codec.Lease(ack({codec.OPT_SUBNET_MASK: codec.ip_to_bytes("255.0.255.0")}))


def test_missing_mask_falls_back_to_classful_prefix():
    assert codec.Lease(ack({}, yiaddr="192.168.5.9")).prefixlen == 24


def test_overloaded_file_field_contributes_options():
    message = ack({codec.OPT_OVERLOAD: b"\x01"})
    data = bytearray(message.encode())
    file_field = 44 + 64
    data[file_field : file_field + 4] = bytes((12, 2)) + b"ab"
    data[file_field + 4] = 255
    assert codec.Message.decode(bytes(data)).options[codec.OPT_HOSTNAME] == b"ab"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x02" * 100, b"\0" * 236 + b"nope", b"\0" * 236 + codec.MAGIC + bytes((3, 10, 1))],
)
def test_garbage_is_malformed(data):
    with pytest.raises(codec.MalformedPacketError):
        codec.Message.decode(data)


def _parse_everything(data: bytes) -> None:
    try:
        message = codec.Message.decode(data)
        codec.Lease(message)
    except codec.MalformedPacketError:
        pass


@settings(max_examples=400)
@given(st.binary(max_size=1500))
def test_fuzz_random_bytes_never_escape(data):
    _parse_everything(data)


@settings(max_examples=400)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=900))
def test_fuzz_valid_header_with_garbage_options_and_truncation(options, cut):
    header = ack({}).encode()[:240]
    data = header + options
    _parse_everything(data)
    _parse_everything(data[:cut])
    _parse_everything(data + b"\xff" * 70000)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.integers(min_value=1, max_value=254), st.binary(min_size=0, max_size=600), max_size=12
    )
)
def test_fuzz_options_round_trip(options):
    message = codec.Message(codec.BOOTREPLY, 7, MAC, options)
    decoded = codec.Message.decode(message.encode())
    # Option 52 changes how the rest is read; everything else comes back byte for byte.
    if codec.OPT_OVERLOAD not in options:
        assert decoded.options == options
    _parse_everything(message.encode())


def test_names_that_are_not_dns_names_are_dropped():
    options = {
        codec.OPT_MESSAGE_TYPE: bytes((codec.ACK,)),
        codec.OPT_DOMAIN: b"lab\nnameserver 6.6.6.6",
        codec.OPT_HOSTNAME: b"web 1",
    }
    lease = codec.Lease(codec.Message(codec.BOOTREPLY, 1, b"\1" * 6, options, yiaddr="10.0.0.5"))
    assert (lease.domain, lease.hostname) == (None, None)
    options[codec.OPT_DOMAIN] = b"lab.example.\0"
    options[codec.OPT_HOSTNAME] = b"web-1"
    lease = codec.Lease(codec.Message(codec.BOOTREPLY, 1, b"\1" * 6, options, yiaddr="10.0.0.5"))
    assert (lease.domain, lease.hostname) == ("lab.example", "web-1")


def test_unusable_leases_are_named():
    def lease(address: str, mask: str) -> codec.Lease:
        options = {codec.OPT_SUBNET_MASK: codec.ip_to_bytes(mask)}
        return codec.Lease(codec.Message(codec.BOOTREPLY, 1, b"\1" * 6, options, yiaddr=address))

    assert lease("10.0.0.5", "255.255.255.0").unusable() is None
    assert lease("10.0.0.5", "255.255.255.255").unusable() is None
    assert "mask" in (lease("10.0.0.5", "0.0.0.0").unusable() or "")
    assert "broadcast" in (lease("10.0.0.255", "255.255.255.0").unusable() or "")
    assert "unicast" in (lease("224.0.0.5", "255.255.255.0").unusable() or "")
