"""DHCPv4 client state machine, driven by a fake server and a manual clock."""

import itertools

from mvirt.pideisn import dhcp4_codec as codec
from mvirt.pideisn.dhcp4 import BOUND, REBINDING, RENEWING, REQUESTING, Dhcp4Client
from mvirt.pideisn.loop import Loop

from .clock import ManualClock

MAC = bytes.fromhex("525400123456")
SERVER = "10.0.2.2"


class Harness:
    def __init__(self) -> None:
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
        )

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.loop.fire_due()

    def reply(self, kind: int, lease_time: int = 100, xid: int | None = None) -> None:
        options = {
            codec.OPT_MESSAGE_TYPE: bytes((kind,)),
            codec.OPT_SERVER_ID: codec.ip_to_bytes(SERVER),
            codec.OPT_SUBNET_MASK: codec.ip_to_bytes("255.255.255.0"),
            codec.OPT_ROUTER: codec.ip_to_bytes(SERVER),
            codec.OPT_LEASE_TIME: lease_time.to_bytes(4, "big"),
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


def test_nak_restarts_discovery():
    h = Harness()
    h.client.start()
    h.reply(codec.OFFER)
    h.reply(codec.NAK)
    assert h.sent[-1][0].message_type == codec.DISCOVER
    assert h.bound == []
