"""DHCPv6 client state machine against a fake server, with a manual clock."""

import itertools
import struct

from mvirt.pideisn import dhcp6_codec as codec
from mvirt.pideisn.dhcp6 import (
    BOUND,
    INFORMED,
    RENEWING,
    REQUESTING,
    SOLICITING,
    Dhcp6Client,
    Dhcp6Lease,
)
from mvirt.pideisn.loop import Loop

from .clock import ManualClock

MAC = bytes.fromhex("525400123456")
SERVER_ID = b"\0\3\0\1\2\2\2\2\2\2"
OTHER_SERVER_ID = b"\0\3\0\1\3\3\3\3\3\3"


class Harness:
    def __init__(self) -> None:
        self.clock = ManualClock()
        self.loop = Loop(self.clock)
        self.sent: list[tuple[float, codec.Message]] = []
        self.bound: list[Dhcp6Lease] = []
        self.expired: list[tuple[float, Dhcp6Lease]] = []
        self.information: list[tuple[list[str], list[str]]] = []
        self.client = Dhcp6Client(
            self.loop,
            "eth0",
            MAC,
            send=lambda data, _dest: self.sent.append((self.clock.now, codec.Message.decode(data))),
            on_bound=self.bound.append,
            on_expired=lambda lease: self.expired.append((self.clock.now, lease)),
            on_information=lambda dns, domains: self.information.append((dns, domains)),
        )

    @property
    def last(self) -> codec.Message:
        return self.sent[-1][1]

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            self.clock.now = min(self.clock.now + step, end)
            self.loop.fire_due()

    def answer(
        self,
        kind: int,
        *,
        with_pd: bool = True,
        client_id: bytes | None = None,
        server_id: bytes = SERVER_ID,
        preference: int | None = None,
        status: int = codec.STATUS_SUCCESS,
        t1: int = 100,
        t2: int = 160,
        prefix: str = "fd00:1::",
        extra: list[tuple[int, bytes]] | None = None,
    ) -> None:
        addresses = [] if status else [codec.IaAddress("fd00::5", 200, 300)]
        na = codec.IdentityAssociation(
            codec.OPT_IA_NA, 1, t1=t1, t2=t2, addresses=addresses, status=status
        )
        ias = [(codec.OPT_IA_NA, na.encode())]
        if with_pd:
            prefixes = [] if status else [codec.IaPrefix(prefix, 56, 200, 300)]
            pd = codec.IdentityAssociation(
                codec.OPT_IA_PD, 1, t1=t1, t2=t2, prefixes=prefixes, status=status
            )
            ias.append((codec.OPT_IA_PD, pd.encode()))
        options = [
            (codec.OPT_CLIENTID, client_id or codec.duid_ll(MAC)),
            (codec.OPT_SERVERID, server_id),
            *ias,
            *(extra or []),
        ]
        if preference is not None:
            options.append((codec.OPT_PREFERENCE, bytes((preference,))))
        self.client.handle_packet(codec.Message(kind, self.client.xid, options).encode())

    def bind(self) -> float:
        """Solicit, advertise (after the collection time), request, reply; the Reply's time."""
        self.client.start()
        self.answer(codec.ADVERTISE)
        self.advance(1.2)
        assert self.client.state == REQUESTING
        self.answer(codec.REPLY)
        assert self.client.state == BOUND
        return self.clock.now

    def kinds_since(self, when: float) -> list[tuple[float, int]]:
        return [(t - when, m.kind) for t, m in self.sent if t >= when]


def test_solicit_asks_for_address_prefix_dns_and_sol_max_rt():
    h = Harness()
    h.client.start()
    solicit = h.last
    assert solicit.kind == codec.SOLICIT
    assert solicit.get(codec.OPT_CLIENTID) == codec.duid_ll(MAC)
    assert [ia.kind for ia in solicit.ias()] == [codec.OPT_IA_NA, codec.OPT_IA_PD]
    assert struct.unpack("!HHH", solicit.get(codec.OPT_ORO) or b"") == (23, 24, 82)


def test_advertise_request_reply_binds_address_and_prefix():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE)
    assert h.client.state == SOLICITING  # still collecting Advertise messages
    h.advance(1.2)
    request = h.last
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
    h.advance(1.2)
    assert h.client.state == SOLICITING
    assert all(m.kind == codec.SOLICIT for _t, m in h.sent)


def test_most_preferred_advertise_wins_after_the_first_rt():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE, preference=10)
    h.answer(codec.ADVERTISE, server_id=OTHER_SERVER_ID, preference=200)
    assert h.client.state == SOLICITING
    h.advance(1.2)
    assert h.last.kind == codec.REQUEST
    assert h.last.get(codec.OPT_SERVERID) == OTHER_SERVER_ID


def test_preference_255_is_taken_at_once():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE, preference=255)
    assert h.client.state == REQUESTING and h.last.kind == codec.REQUEST


def test_lease_times_count_from_the_reply():
    h = Harness()
    h.client.start()
    h.advance(30)  # a server that answers only after several Solicits
    h.answer(codec.ADVERTISE)
    h.advance(5)  # and Requests
    h.answer(codec.REPLY)
    replied = h.clock.now
    h.advance(99.9)
    assert h.client.state == BOUND
    h.advance(0.2)
    assert h.client.state == RENEWING
    assert h.kinds_since(replied)[0][1] == codec.RENEW
    assert abs(h.kinds_since(replied)[0][0] - 100) < 0.1


def test_silent_server_renew_ends_at_t2_rebind_at_valid_lifetime_then_expiry():
    h = Harness()
    replied = h.bind()
    h.advance(310)
    sent = h.kinds_since(replied)
    renews = [t for t, kind in sent if kind == codec.RENEW]
    rebinds = [t for t, kind in sent if kind == codec.REBIND]
    solicits = [t for t, kind in sent if kind == codec.SOLICIT]
    assert abs(renews[0] - 100) < 0.1 and renews[-1] < 160
    assert abs(rebinds[0] - 160) < 0.1 and rebinds[-1] < 300
    assert [round(t - replied, 1) for t, _lease in h.expired] == [300.0]
    assert abs(solicits[0] - 300) < 0.1
    rebind = next(m for _t, m in h.sent if m.kind == codec.REBIND)
    assert rebind.get(codec.OPT_SERVERID) is None


def test_no_binding_on_renew_requests_again_and_expiry_still_fires():
    h = Harness()
    replied = h.bind()
    h.advance(100.1)
    assert h.client.state == RENEWING
    h.answer(codec.REPLY, status=codec.STATUS_NO_BINDING)
    assert h.client.state == REQUESTING
    request = h.last
    assert request.kind == codec.REQUEST and request.get(codec.OPT_SERVERID) == SERVER_ID
    assert [a.address for ia in request.ias() for a in ia.addresses] == ["fd00::5"]
    h.advance(250)  # the server stays silent from now on
    assert [round(t - replied, 1) for t, _lease in h.expired] == [300.0]


def test_sol_max_rt_from_the_server_caps_solicit_retransmission():
    h = Harness()
    h.client.start()
    h.answer(
        codec.ADVERTISE,
        status=codec.STATUS_NO_ADDRS_AVAIL,
        extra=[(codec.OPT_SOL_MAX_RT, (60).to_bytes(4, "big"))],
    )
    h.advance(600, step=0.5)
    times = [t for t, m in h.sent if m.kind == codec.SOLICIT]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 66 and gaps[-1] >= 54


def test_information_request_for_stateless_configuration():
    h = Harness()
    h.client.inform()
    message = h.last
    assert message.kind == codec.INFORMATION_REQUEST and not message.ias()
    oro = struct.unpack("!4H", message.get(codec.OPT_ORO) or b"")
    assert codec.OPT_DNS_SERVERS in oro and codec.OPT_INFORMATION_REFRESH_TIME in oro
    dns = (codec.OPT_DNS_SERVERS, bytes.fromhex("fd00" + "00" * 13 + "53"))
    refresh = (codec.OPT_INFORMATION_REFRESH_TIME, (900).to_bytes(4, "big"))
    options = [(codec.OPT_CLIENTID, codec.duid_ll(MAC)), (codec.OPT_SERVERID, SERVER_ID)]
    reply = codec.Message(codec.REPLY, h.client.xid, [*options, dns, refresh])
    h.client.handle_packet(reply.encode())
    assert h.client.state == INFORMED and h.information == [(["fd00::53"], [])]
    count = len(h.sent)
    h.advance(899, step=1)
    assert len(h.sent) == count
    h.advance(2, step=1)
    assert h.last.kind == codec.INFORMATION_REQUEST


def test_inconsistent_ia_is_rejected():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE, t1=200, t2=100)  # T1 > T2: the IA is discarded
    h.advance(1.2)
    assert h.client.state == SOLICITING


def test_delegated_prefix_with_host_bits_is_kept_in_normal_form():
    h = Harness()
    h.client.start()
    h.answer(codec.ADVERTISE, prefix="fd00:1::1")
    h.advance(1.2)
    h.answer(codec.REPLY, prefix="fd00:1::1")
    assert [(p.prefix, p.prefixlen) for p in h.bound[0].prefixes] == [("fd00:1::", 56)]


def test_solicit_retransmits_with_growing_intervals():
    h = Harness()
    h.client.start()
    h.advance(40, step=0.1)
    times = [t for t, _m in h.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps))
