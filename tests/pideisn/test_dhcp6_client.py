"""DHCPv6 client state machine against a fake server, with a manual clock."""

import itertools
import struct

from mvirt.pideisn import dhcp6_codec as codec
from mvirt.pideisn.dhcp6 import BOUND, REBINDING, RENEWING, REQUESTING, Dhcp6Client, Dhcp6Lease
from mvirt.pideisn.loop import Loop

from .clock import ManualClock

MAC = bytes.fromhex("525400123456")
SERVER_ID = b"\0\3\0\1\2\2\2\2\2\2"


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.loop = Loop(self.clock)
        self.sent: list[codec.Message] = []
        self.bound: list[Dhcp6Lease] = []
        self.expired: list[Dhcp6Lease] = []
        self.client = Dhcp6Client(
            self.loop,
            "eth0",
            MAC,
            send=lambda data, _dest: self.sent.append(codec.Message.decode(data)),
            on_bound=self.bound.append,
            on_expired=self.expired.append,
        )

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.loop.fire_due()

    def answer(self, kind: int, *, with_pd: bool = True, client_id: bytes | None = None) -> None:
        na = codec.IdentityAssociation(
            codec.OPT_IA_NA, 1, t1=100, t2=160, addresses=[codec.IaAddress("fd00::5", 200, 300)]
        )
        ias = [(codec.OPT_IA_NA, na.encode())]
        if with_pd:
            pd = codec.IdentityAssociation(
                codec.OPT_IA_PD,
                1,
                t1=100,
                t2=160,
                prefixes=[codec.IaPrefix("fd00:1::", 56, 200, 300)],
            )
            ias.append((codec.OPT_IA_PD, pd.encode()))
        options = [
            (codec.OPT_CLIENTID, client_id or codec.duid_ll(MAC)),
            (codec.OPT_SERVERID, SERVER_ID),
            *ias,
        ]
        self.client.handle_packet(codec.Message(kind, self.client.xid, options).encode())


def test_solicit_asks_for_address_and_prefix():
    h = Harness()
    h.client.start()
    solicit = h.sent[-1]
    assert solicit.kind == codec.SOLICIT
    assert solicit.get(codec.OPT_CLIENTID) == codec.duid_ll(MAC)
    assert [ia.kind for ia in solicit.ias()] == [codec.OPT_IA_NA, codec.OPT_IA_PD]
    assert struct.unpack("!HH", solicit.get(codec.OPT_ORO) or b"") == (23, 24)


def test_advertise_request_reply_binds_address_and_prefix():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE)
    request = h.sent[-1]
    assert request.kind == codec.REQUEST and request.get(codec.OPT_SERVERID) == SERVER_ID
    assert h.client.state == REQUESTING
    h.answer(codec.REPLY)
    assert h.client.state == BOUND
    [lease] = h.bound
    assert [a.address for a in lease.addresses] == ["fd00::5"]
    assert [(p.prefix, p.prefixlen) for p in lease.prefixes] == [("fd00:1::", 56)]


def test_message_for_another_client_is_ignored():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE, client_id=codec.duid_ll(b"\1" * 6))
    assert h.client.state != REQUESTING and len(h.sent) == 1


def test_renew_at_t1_rebind_at_t2_and_expiry():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE)
    h.answer(codec.REPLY)
    h.advance(101)
    assert h.client.state == RENEWING and h.sent[-1].kind == codec.RENEW
    assert h.sent[-1].get(codec.OPT_SERVERID) == SERVER_ID
    h.advance(60)
    for _ in range(30):
        h.advance(1)
    assert h.client.state == REBINDING and h.sent[-1].kind == codec.REBIND
    assert h.sent[-1].get(codec.OPT_SERVERID) is None
    for _ in range(400):
        h.advance(1)
    assert len(h.expired) == 1
    assert h.sent[-1].kind == codec.SOLICIT


def test_solicit_retransmits_with_growing_intervals():
    h = Harness()
    h.client.start()
    times = [h.clock.now]
    for _ in range(400):
        h.advance(0.1)
        if len(h.sent) > len(times):
            times.append(h.clock.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps))
