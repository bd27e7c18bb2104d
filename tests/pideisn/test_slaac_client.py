"""Router solicitation and the validity checks on received advertisements."""

from mvirt.pideisn import ndp_codec as codec
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.slaac import ALL_ROUTERS, SlaacClient

from .clock import ManualClock

MAC = bytes.fromhex("525400123456")


def make():
    clock = ManualClock()
    loop = Loop(clock)
    sent, seen = [], []
    client = SlaacClient(
        loop,
        "eth0",
        MAC,
        lambda data, dest: sent.append((data, dest)),
        lambda ra, src: seen.append(src),
    )
    return clock, loop, client, sent, seen


def test_solicits_until_a_router_answers():
    clock, loop, client, sent, _seen = make()
    client.start()
    for _ in range(40):
        clock.now += 0.25
        loop.fire_due()
    assert len(sent) == 4  # at 0, 1, 3 and 7 s
    assert all(dest == ALL_ROUTERS and data[0] == 133 for data, dest in sent)
    client.handle_packet(codec.RouterAdvertisement(lifetime=60).encode(), "fe80::1", 255)
    for _ in range(200):
        clock.now += 0.5
        loop.fire_due()
    assert len(sent) == 4


def test_only_link_local_sources_with_hop_limit_255_count():
    _clock, _loop, client, _sent, seen = make()
    ra = codec.RouterAdvertisement(lifetime=60).encode()
    client.handle_packet(ra, "2001:db8::1", 255)
    client.handle_packet(ra, "fe80::1", 64)
    client.handle_packet(b"\x86\0", "fe80::1", 255)
    assert seen == []
    client.handle_packet(ra, "fe80::1", 255)
    assert seen == ["fe80::1"]
