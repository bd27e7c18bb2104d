"""DHCPv6 codec: messages, IA_NA/IA_PD, DNS options, leases, and fuzzing of the parser."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mvirt.pideisn import dhcp6_codec as codec
from mvirt.pideisn.dhcp6 import Dhcp6Lease

MAC = bytes.fromhex("525400123456")


def reply(*ias: codec.IdentityAssociation) -> codec.Message:
    options = [
        (codec.OPT_CLIENTID, codec.duid_ll(MAC)),
        (codec.OPT_SERVERID, b"\0\3\0\1server"),
        *[(ia.kind, ia.encode()) for ia in ias],
        (codec.OPT_DNS_SERVERS, bytes(15) + b"\1"),
        (codec.OPT_DOMAIN_LIST, codec.encode_domains(["example.org", "lab.example"])),
    ]
    return codec.Message(codec.REPLY, 0xABCDEF, options)


def test_message_round_trip():
    na = codec.IdentityAssociation(
        codec.OPT_IA_NA, 1, t1=100, t2=160, addresses=[codec.IaAddress("2001:db8::5", 200, 300)]
    )
    pd = codec.IdentityAssociation(
        codec.OPT_IA_PD, 1, t1=50, t2=80, prefixes=[codec.IaPrefix("2001:db8:100::", 56, 90, 120)]
    )
    message = reply(na, pd)
    decoded = codec.Message.decode(message.encode())
    assert decoded == message
    assert decoded.ias() == [na, pd]
    assert decoded.dns_servers() == ["::1"]
    assert decoded.domains() == ["example.org", "lab.example"]


def test_lease_takes_addresses_prefixes_and_shortest_timers():
    na = codec.IdentityAssociation(
        codec.OPT_IA_NA, 1, t1=100, t2=160, addresses=[codec.IaAddress("2001:db8::5", 200, 300)]
    )
    pd = codec.IdentityAssociation(
        codec.OPT_IA_PD, 1, t1=50, t2=80, prefixes=[codec.IaPrefix("2001:db8:100::", 56, 90, 120)]
    )
    lease = Dhcp6Lease(reply(na, pd))
    assert [a.address for a in lease.addresses] == ["2001:db8::5"]
    assert [(p.prefix, p.prefixlen) for p in lease.prefixes] == [("2001:db8:100::", 56)]
    assert (lease.t1, lease.t2, lease.valid) == (50, 80, 120)


def test_lease_ignores_ia_with_error_status():
    na = codec.IdentityAssociation(codec.OPT_IA_NA, 1, status=codec.STATUS_NO_ADDRS_AVAIL)
    pd = codec.IdentityAssociation(
        codec.OPT_IA_PD, 1, prefixes=[codec.IaPrefix("2001:db8:100::", 56, 100, 200)]
    )
    lease = Dhcp6Lease(reply(na, pd))
    assert lease.addresses == [] and len(lease.prefixes) == 1
    # T1/T2 of zero: the client picks 0.5 and 0.8 of the preferred lifetime.
    assert (lease.t1, lease.t2) == (50, 80)


def test_duid_ll_is_type_3_ethernet():
    assert codec.duid_ll(MAC) == bytes.fromhex("00030001") + MAC


@pytest.mark.parametrize(
    "data",
    [b"", b"\x07\0\0", b"\x07\0\0\1\0\1\0\x10abc", b"\x07\0\0\1\0\3\0\2ab"],
)
def test_malformed_messages_are_rejected(data):
    with pytest.raises(codec.MalformedPacketError):
        message = codec.Message.decode(data)
        message.ias()


def _parse_everything(data: bytes) -> None:
    try:
        message = codec.Message.decode(data)
        message.ias()
        message.status()
        message.dns_servers()
        message.domains()
        Dhcp6Lease(message)
    except codec.MalformedPacketError:
        pass


@settings(max_examples=500)
@given(st.binary(max_size=800))
def test_fuzz_random_bytes_never_escape(data):
    _parse_everything(data)
    _parse_everything(b"\x07\0\0\1" + data)


option_codes = st.sampled_from(
    [
        codec.OPT_IA_NA,
        codec.OPT_IA_PD,
        codec.OPT_STATUS_CODE,
        codec.OPT_DNS_SERVERS,
        codec.OPT_DOMAIN_LIST,
        codec.OPT_SERVERID,
    ]
)


@settings(max_examples=500)
@given(st.lists(st.tuples(option_codes, st.binary(max_size=80)), max_size=8))
def test_fuzz_structured_options_never_escape(options):
    data = codec.Message(codec.REPLY, 1, options).encode()
    _parse_everything(data)
    _parse_everything(data[: len(data) // 2])
    _parse_everything(data * 50)
