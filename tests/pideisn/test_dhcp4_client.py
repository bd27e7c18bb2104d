"""DHCPv4 client state machine, driven by a fake server and a manual clock."""

import itertools

from mvirt.pideisn import dhcp4_codec as codec
from mvirt.pideisn.dhcp4 import (
    BOUND,
    INIT,
    REBINDING,
    REBOOTING,
    RENEWING,
    REQUESTING,
    SELECTING,
    Dhcp4Client,
)
from mvirt.pideisn.loop import Loop

from .clock import ManualClock

MAC = bytes.fromhex("525400123456")
SERVER = "10.0.2.2"


class Harness:
    def __init__(self, previous_address: str | None = None) -> None:
        self.clock = ManualClock()
        self.loop = Loop(self.clock)
        self.sent: list[tuple[codec.Message, str]] = []
        self.bound: list[codec.Lease] = []
        self.expired: list[codec.Lease] = []
        self.client = Dhcp4Client(
            self.loop,
            "eth0",
            MAC,
            send=lambda data, dest: self.sent.append((codec.Message.decode(data), dest)),
            on_bound=self.bound.append,
            on_expired=self.expired.append,
            previous_address=previous_address,
        )

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.loop.fire_due()

    def reply(
        self,
        kind: int,
        lease_time: int = 100,
        xid: int | None = None,
        extra: dict[int, bytes] | None = None,
    ) -> None:
        options = {
            codec.OPT_MESSAGE_TYPE: bytes((kind,)),
            codec.OPT_SERVER_ID: codec.ip_to_bytes(SERVER),
            codec.OPT_SUBNET_MASK: codec.ip_to_bytes("255.255.255.0"),
            codec.OPT_ROUTER: codec.ip_to_bytes(SERVER),
            codec.OPT_LEASE_TIME: lease_time.to_bytes(4, "big"),
            **(extra or {}),
        }
        message = codec.Message(
            codec.BOOTREPLY,
            self.client.xid if xid is None else xid,
            MAC,
            options,
            yiaddr="10.0.2.15",
        )
        self.client.handle_packet(message.encode())

    def bind(self) -> None:
        self.client.start()
        self.reply(codec.OFFER)
        self.reply(codec.ACK)


def test_discover_offer_request_ack():
    h = Harness()
    h.client.start()
    discover, dest = h.sent[-1]
    assert (discover.message_type, dest) == (codec.DISCOVER, "255.255.255.255")
    assert discover.flags & codec.FLAG_BROADCAST
    h.reply(codec.OFFER)
    request, _ = h.sent[-1]
    assert request.message_type == codec.REQUEST
    assert request.options[codec.OPT_REQUESTED_IP] == codec.ip_to_bytes("10.0.2.15")
    assert request.options[codec.OPT_SERVER_ID] == codec.ip_to_bytes(SERVER)
    assert h.client.state == REQUESTING
    h.reply(codec.ACK)
    assert h.client.state == BOUND
    assert [lease.address for lease in h.bound] == ["10.0.2.15"]


def test_replies_for_another_transaction_are_ignored():
    h = Harness()
    h.client.start()
    h.reply(codec.OFFER, xid=h.client.xid ^ 1)
    h.client.handle_packet(b"garbage")
    assert len(h.sent) == 1


def test_discover_is_retransmitted_with_exponential_backoff():
    h = Harness()
    h.client.start()
    times = [h.clock.now]
    for _ in range(200):
        h.advance(0.25)
        if len(h.sent) > len(times):
            times.append(h.clock.now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    # 2, 4, 8, 16 s with at most ±1 s of jitter each.
    for gap, nominal in zip(gaps, [2, 4, 8, 16], strict=False):
        assert nominal - 1.25 <= gap <= nominal + 1.25
    assert all(m.message_type == codec.DISCOVER for m, _ in h.sent)


def test_renews_unicast_at_t1_and_rebinds_broadcast_at_t2():
    h = Harness()
    h.bind()
    sent = len(h.sent)
    h.advance(49)
    assert len(h.sent) == sent
    h.advance(1.5)  # T1 = 50 s
    renew, dest = h.sent[-1]
    assert h.client.state == RENEWING
    assert (renew.message_type, dest, renew.ciaddr) == (codec.REQUEST, SERVER, "10.0.2.15")
    assert not renew.flags & codec.FLAG_BROADCAST
    h.advance(38)  # past T2 = 87.5 s
    rebind, dest = h.sent[-1]
    assert h.client.state == REBINDING
    assert (rebind.message_type, dest) == (codec.REQUEST, "255.255.255.255")
    h.reply(codec.ACK)
    assert h.client.state == BOUND and len(h.bound) == 2


def test_lease_expiry_drops_address_and_starts_over():
    h = Harness()
    h.bind()
    for _ in range(120):
        h.advance(1)
    assert [lease.address for lease in h.expired] == ["10.0.2.15"]
    assert h.sent[-1][0].message_type == codec.DISCOVER


def test_nak_restarts_discovery_after_a_delay():
    h = Harness()
    h.client.start()
    h.reply(codec.OFFER)
    h.reply(codec.NAK)
    assert h.sent[-1][0].message_type == codec.REQUEST
    h.advance(1.01)
    assert h.sent[-1][0].message_type == codec.DISCOVER
    assert h.bound == []


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _sent_times(
    h: Harness, until: float, step: float = 0.05
) -> list[tuple[float, codec.Message, str]]:
    """Advance the clock in small steps up to `until`, noting when each message left."""
    out = []
    seen = len(h.sent)
    while h.clock.now < until:
        h.advance(step)
        for message, dest in h.sent[seen:]:
            out.append((h.clock.now, message, dest))
        seen = len(h.sent)
    return out


def test_lease_counts_from_the_request_that_a_late_server_answered():
    h = Harness()
    h.client.start()
    h.advance(60)  # the server answers only after a minute of DISCOVERs
    h.reply(codec.OFFER)
    requested_at = h.clock.now
    h.advance(0.5)
    h.reply(codec.ACK, lease_time=100)
    assert h.client.state == BOUND
    h.advance(49)
    assert h.client.state == BOUND  # T1 is 50 s after the REQUEST, not after the DISCOVER
    sent = _sent_times(h, requested_at + 51)
    first_renew = sent[0][0]
    assert abs(first_renew - (requested_at + 50)) < 0.1
    assert h.client.state == RENEWING


def test_silent_server_renews_until_t2_rebinds_until_expiry_then_discovers():
    h = Harness()
    h.client.start()
    h.reply(codec.OFFER)
    requested_at = h.clock.now
    h.reply(codec.ACK, lease_time=100)  # T1 50 s, T2 87.5 s
    sent = _sent_times(h, requested_at + 101)
    renews = [t - requested_at for t, m, dest in sent if dest == SERVER]
    rebinds = [
        t - requested_at
        for t, m, dest in sent
        if m.message_type == codec.REQUEST and dest == "255.255.255.255"
    ]
    discovers = [t - requested_at for t, m, _ in sent if m.message_type == codec.DISCOVER]
    assert renews and abs(renews[0] - 50) < 0.1 and renews[-1] < 87.5
    assert rebinds and abs(rebinds[0] - 87.5) < 0.1 and rebinds[-1] < 100
    assert len(h.expired) == 1
    assert discovers and abs(discovers[0] - 100) < 0.1  # expiry exactly at the lease's end


def test_nak_storm_is_slowed_down_by_a_growing_delay():
    h = Harness()
    h.client.start()
    discovers = []
    answered = 0
    while h.clock.now < 1000 + 120:
        for message, _dest in h.sent[answered:]:
            if message.message_type == codec.DISCOVER:
                discovers.append(h.clock.now)
                h.reply(codec.OFFER)
            elif message.message_type == codec.REQUEST:
                h.reply(codec.NAK)
        answered = len(h.sent)
        h.advance(0.05)
    gaps = [b - a for a, b in itertools.pairwise(discovers)]
    assert 3 <= len(discovers) <= 9, discovers
    assert gaps[0] >= 0.9
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps[:5]))
    assert h.bound == []


def test_timers_out_of_order_fall_back_to_the_defaults():
    h = Harness()
    h.client.start()
    h.reply(codec.OFFER)
    requested_at = h.clock.now
    # T2 beyond the lease and T1 beyond T2: RFC 2131 wants 0 < T1 < T2 < lease.
    h.reply(codec.ACK, extra={codec.OPT_T1: _u32(300), codec.OPT_T2: _u32(200)})
    sent = _sent_times(h, requested_at + 95)
    renews = [t - requested_at for t, _m, dest in sent if dest == SERVER]
    rebinds = [t - requested_at for t, _m, dest in sent if dest == "255.255.255.255"]
    assert abs(renews[0] - 50) < 0.1
    assert abs(rebinds[0] - 87.5) < 0.1


def test_zero_mask_and_zero_lease_time_are_refused_and_retried_later():
    for extra in (
        {codec.OPT_SUBNET_MASK: codec.ip_to_bytes("0.0.0.0")},
        {codec.OPT_LEASE_TIME: _u32(0)},
    ):
        h = Harness()
        h.client.start()
        h.reply(codec.OFFER)
        h.reply(codec.ACK, extra=extra)
        assert h.bound == [] and h.client.lease is None
        assert h.client.state == INIT
        count = len(h.sent)
        h.advance(0.5)
        assert len(h.sent) == count  # no immediate restart
        h.advance(1)
        assert h.sent[-1][0].message_type == codec.DISCOVER


def test_release_gives_the_lease_back_and_stops():
    h = Harness()
    h.bind()
    h.client.release()
    release, dest = h.sent[-1]
    assert (release.message_type, dest, release.ciaddr) == (codec.RELEASE, SERVER, "10.0.2.15")
    assert release.options[codec.OPT_SERVER_ID] == codec.ip_to_bytes(SERVER)
    count = len(h.sent)
    h.advance(500)
    assert len(h.sent) == count and h.client.lease is None


def test_init_reboot_asks_for_the_previous_address_first():
    h = Harness(previous_address="10.0.2.15")
    h.client.start()
    request, dest = h.sent[-1]
    assert h.client.state == REBOOTING
    assert (request.message_type, dest) == (codec.REQUEST, "255.255.255.255")
    assert request.options[codec.OPT_REQUESTED_IP] == codec.ip_to_bytes("10.0.2.15")
    assert codec.OPT_SERVER_ID not in request.options
    h.reply(codec.ACK)
    assert h.client.state == BOUND and [lease.address for lease in h.bound] == ["10.0.2.15"]


def test_init_reboot_nak_or_silence_falls_back_to_discovery():
    h = Harness(previous_address="10.0.2.99")
    h.client.start()
    h.reply(codec.NAK)
    assert h.client.state == SELECTING and h.sent[-1][0].message_type == codec.DISCOVER
    h = Harness(previous_address="10.0.2.99")
    h.client.start()
    _sent_times(h, 1000 + 20, step=0.25)
    assert h.client.state == SELECTING and h.sent[-1][0].message_type == codec.DISCOVER


def test_mtu_option_is_requested_and_reported():
    h = Harness()
    h.client.start()
    discover, _ = h.sent[-1]
    assert codec.OPT_MTU in discover.options[codec.OPT_PARAMS]
    h.reply(codec.OFFER)
    h.reply(codec.ACK, extra={codec.OPT_MTU: (1400).to_bytes(2, "big")})
    assert h.bound[-1].mtu == 1400
