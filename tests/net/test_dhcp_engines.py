"""The DHCPv4/DHCPv6 allocation engines and the RA codec, without sockets: message by
message, plus hypothesis fuzzing that every parser is total."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from mvirt.net import dhcp4_server, dhcp6_server, router_adv
from mvirt.pideisn import dhcp4_codec as c4
from mvirt.pideisn import dhcp6_codec as c6
from mvirt.pideisn import ndp_codec

MAC = bytes.fromhex("02aabbccddee")
B4 = dhcp4_server.Binding4("10.0.0.7", MAC, dns=("10.0.0.53", "fd00::53"), ntp=("10.0.0.123",))
DUID = c6.duid_ll(bytes.fromhex("020000000001"))
B6 = dhcp6_server.Binding6(DUID, "fd00::7", dns=("fd00::53", "10.0.0.53"), ntp=("fd00::123",))
CLIENT = c6.duid_ll(MAC)


def request4(kind: int, **options: bytes) -> bytes:
    opts = {c4.OPT_MESSAGE_TYPE: bytes((kind,))}
    opts.update({int(k.removeprefix("o")): v for k, v in options.items()})
    return c4.Message(c4.BOOTREQUEST, 0x1234, MAC, opts).encode()


def test_discover_is_offered_the_nics_address_for_ever() -> None:
    reply = c4.Message.decode(dhcp4_server.answer(request4(c4.DISCOVER), B4) or b"")
    assert reply.message_type == c4.OFFER and reply.xid == 0x1234 and reply.chaddr == MAC
    assert reply.yiaddr == "10.0.0.7"
    assert reply.options[c4.OPT_SUBNET_MASK] == bytes(4 * [255])
    assert reply.options[c4.OPT_LEASE_TIME] == b"\xff\xff\xff\xff"
    assert reply.options[c4.OPT_DNS] == c4.ip_to_bytes("10.0.0.53")  # IPv6 ones left out
    assert c4.decode_classless_routes(reply.options[c4.OPT_CLASSLESS_ROUTES]) == [
        ("169.254.0.1", 32, "0.0.0.0"),
        ("0.0.0.0", 0, "169.254.0.1"),
    ]


def test_request_for_the_nics_address_is_acked_and_others_naked() -> None:
    ack = c4.Message.decode(
        dhcp4_server.answer(request4(c4.REQUEST, o50=c4.ip_to_bytes("10.0.0.7")), B4) or b""
    )
    assert ack.message_type == c4.ACK and ack.yiaddr == "10.0.0.7"
    nak = c4.Message.decode(
        dhcp4_server.answer(request4(c4.REQUEST, o50=c4.ip_to_bytes("10.0.0.8")), B4) or b""
    )
    assert nak.message_type == c4.NAK and nak.yiaddr == "0.0.0.0"


def test_request_to_another_server_release_and_decline_get_no_answer() -> None:
    other = request4(c4.REQUEST, o54=c4.ip_to_bytes("10.9.9.9"), o50=c4.ip_to_bytes("10.0.0.7"))
    assert dhcp4_server.answer(other, B4) is None
    assert dhcp4_server.answer(request4(c4.RELEASE), B4) is None
    assert dhcp4_server.answer(request4(c4.DECLINE), B4) is None


def test_inform_gets_configuration_without_an_address() -> None:
    reply = c4.Message.decode(dhcp4_server.answer(request4(dhcp4_server.INFORM), B4) or b"")
    assert reply.message_type == c4.ACK and reply.yiaddr == "0.0.0.0"
    assert c4.OPT_LEASE_TIME not in reply.options and c4.OPT_ROUTER in reply.options


def test_a_request_from_another_mac_gets_no_answer_at_all() -> None:
    other = bytes.fromhex("02aabbccddef")
    for kind, options in (
        (c4.DISCOVER, {}),
        (c4.REQUEST, {c4.OPT_REQUESTED_IP: c4.ip_to_bytes("10.0.0.7")}),
        (c4.REQUEST, {c4.OPT_REQUESTED_IP: c4.ip_to_bytes("10.0.0.8")}),  # not even a NAK
        (dhcp4_server.INFORM, {}),
    ):
        opts = {c4.OPT_MESSAGE_TYPE: bytes((kind,)), **options}
        request = c4.Message(c4.BOOTREQUEST, 0x1234, other, opts).encode()
        assert dhcp4_server.answer(request, B4) is None, kind
        for hlen in (5, 7):  # the NIC's MAC as a prefix of a shorter or longer address
            ours = bytearray(c4.Message(c4.BOOTREQUEST, 0x1234, MAC, opts).encode())
            ours[2] = hlen
            assert dhcp4_server.answer(bytes(ours), B4) is None, (kind, hlen)


def test_nic_without_ipv4_gets_no_offer() -> None:
    assert dhcp4_server.answer(request4(c4.DISCOVER), None) is None


def msg6(kind: int, *extra: tuple[int, bytes]) -> bytes:
    ia = c6.IdentityAssociation(c6.OPT_IA_NA, 9).encode()
    options = [(c6.OPT_CLIENTID, CLIENT), (c6.OPT_IA_NA, ia), *extra]
    return c6.Message(kind, 0xABCDE, options).encode()


def test_solicit_is_advertised_and_request_replied_with_the_nics_address() -> None:
    adv = c6.Message.decode(dhcp6_server.answer(msg6(c6.SOLICIT), B6) or b"")
    assert adv.kind == c6.ADVERTISE and adv.xid == 0xABCDE
    assert adv.get(c6.OPT_SERVERID) == DUID and adv.get(c6.OPT_CLIENTID) == CLIENT
    (ia,) = adv.ias()
    assert ia.iaid == 9 and [a.address for a in ia.addresses] == ["fd00::7"]
    assert ia.addresses[0].valid == 0xFFFFFFFF
    assert adv.dns_servers() == ["fd00::53"]
    reply = c6.Message.decode(
        dhcp6_server.answer(msg6(c6.REQUEST, (c6.OPT_SERVERID, DUID)), B6) or b""
    )
    assert reply.kind == c6.REPLY and reply.ias()[0].addresses[0].address == "fd00::7"


def test_rapid_commit_solicit_gets_a_reply_at_once() -> None:
    reply = c6.Message.decode(
        dhcp6_server.answer(msg6(c6.SOLICIT, (c6.OPT_RAPID_COMMIT, b"")), B6) or b""
    )
    assert reply.kind == c6.REPLY and reply.get(c6.OPT_RAPID_COMMIT) == b""


def test_messages_for_another_server_are_ignored() -> None:
    other = c6.duid_ll(bytes(6))
    for kind in (c6.REQUEST, c6.RENEW, c6.RELEASE):
        assert dhcp6_server.answer(msg6(kind, (c6.OPT_SERVERID, other)), B6) is None
    assert dhcp6_server.answer(msg6(c6.SOLICIT, (c6.OPT_SERVERID, DUID)), B6) is None


def test_renew_rebind_release_and_information_request() -> None:
    for kind in (c6.RENEW, c6.REBIND):
        extra = [(c6.OPT_SERVERID, DUID)] if kind == c6.RENEW else []
        reply = c6.Message.decode(dhcp6_server.answer(msg6(kind, *extra), B6) or b"")
        assert reply.kind == c6.REPLY and reply.ias()[0].addresses[0].address == "fd00::7"
    release = c6.Message.decode(
        dhcp6_server.answer(msg6(c6.RELEASE, (c6.OPT_SERVERID, DUID)), B6) or b""
    )
    assert release.kind == c6.REPLY and release.status() == c6.STATUS_SUCCESS
    info = c6.Message.decode(
        dhcp6_server.answer(c6.Message(c6.INFORMATION_REQUEST, 7, []).encode(), B6) or b""
    )
    assert info.kind == c6.REPLY and info.ias() == [] and info.dns_servers() == ["fd00::53"]
    ntp = info.get(dhcp6_server.OPT_NTP_SERVER) or b""
    assert ntp[:4] == struct.pack("!HH", 1, 16) and len(ntp) == 20


def test_prefix_delegation_is_refused_and_nic_without_ipv6_gets_no_address() -> None:
    pd = c6.IdentityAssociation(c6.OPT_IA_PD, 3).encode()
    adv = c6.Message.decode(dhcp6_server.answer(msg6(c6.SOLICIT, (c6.OPT_IA_PD, pd)), B6) or b"")
    kinds = {ia.kind: ia.status for ia in adv.ias()}
    assert kinds == {c6.OPT_IA_NA: c6.STATUS_SUCCESS, c6.OPT_IA_PD: c6.STATUS_NO_PREFIX_AVAIL}
    no_v6 = dhcp6_server.Binding6(DUID, None)
    adv = c6.Message.decode(dhcp6_server.answer(msg6(c6.SOLICIT), no_v6) or b"")
    assert adv.ias()[0].status == c6.STATUS_NO_ADDRS_AVAIL


def test_router_advertisement_is_managed_with_other_config_and_rdnss() -> None:
    ra = ndp_codec.RouterAdvertisement.decode(router_adv.advertisement(("fd00::53", "10.0.0.1")))
    assert ra.flags & ndp_codec.FLAG_MANAGED and ra.flags & ndp_codec.FLAG_OTHER
    assert ra.lifetime == router_adv.ROUTER_LIFETIME and ra.dns == ["fd00::53"]
    assert ra.prefixes == []
    assert router_adv.is_solicitation(ndp_codec.encode_router_solicitation(MAC))
    assert not router_adv.is_solicitation(router_adv.advertisement(()))


def test_nic_without_ipv6_is_not_told_to_wait_for_dhcpv6() -> None:
    ra = ndp_codec.RouterAdvertisement.decode(router_adv.advertisement((), has_ipv6=False))
    assert not ra.flags & ndp_codec.FLAG_MANAGED and ra.flags & ndp_codec.FLAG_OTHER
    assert ra.lifetime == 0


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=700))
def test_every_byte_string_gets_a_reply_or_none(data: bytes) -> None:
    for reply in (dhcp4_server.answer(data, B4), dhcp6_server.answer(data, B6)):
        assert reply is None or isinstance(reply, bytes)
    assert router_adv.is_solicitation(data) in (True, False)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.integers(0, 255),
    options=st.dictionaries(st.integers(1, 254), st.binary(max_size=40), max_size=8),
)
def test_dhcp4_requests_with_arbitrary_options_never_raise(kind: int, options) -> None:
    options[c4.OPT_MESSAGE_TYPE] = bytes((kind,))
    data = c4.Message(c4.BOOTREQUEST, 1, MAC, options).encode()
    reply = dhcp4_server.answer(data, B4)
    assert reply is None or c4.Message.decode(reply).op == c4.BOOTREPLY


@settings(max_examples=300, deadline=None)
@given(
    kind=st.integers(0, 255),
    options=st.lists(st.tuples(st.integers(0, 60), st.binary(max_size=40)), max_size=8),
)
def test_dhcp6_messages_with_arbitrary_options_never_raise(kind: int, options) -> None:
    data = c6.Message(kind, 1, options).encode()
    reply = dhcp6_server.answer(data, B6)
    assert reply is None or c6.Message.decode(reply).kind in (c6.ADVERTISE, c6.REPLY)
