"""End to end: the project's image booted in QEMU on TAPs of mvirt-net. pideisn gets the /32
and /128 the API reports by DHCPv4 and DHCPv6; guests of one network ping each other through
the gateway; a guest of another network cannot reach them; a forged source is counted and
dropped by nftables; a TCP stream between two guests arrives whole and unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mvirt.proto import net_pb2
from tests.net.image_guest import ImageGuest, image_paths, overlay_initrd
from tests.net.kernel_state import counter

pytestmark = pytest.mark.e2e
BOOT_TIMEOUT = 300


@pytest.fixture
def image(tmp_path):
    paths = image_paths()
    if paths is None:
        pytest.fail("no built image: run `.venv/bin/mvirt-build uki` first")
    kernel, initrd = paths
    return kernel, overlay_initrd(initrd, tmp_path / "initrd-with-probe")


@pytest.fixture
def guests() -> Iterator[list[ImageGuest]]:
    made: list[ImageGuest] = []
    yield made
    for guest in made:
        guest.close()


def test_guests_get_their_addresses_reach_each_other_and_nothing_else(net, image, guests):
    kernel, initrd = image
    for name, v4, v6 in (("prod", "10.200.0.0/24", "fd00:200::/64"),
                         ("other", "10.201.0.0/24", "fd00:201::/64")):  # fmt: skip
        net.stub.CreateNetwork(
            net_pb2.CreateNetworkRequest(name=name, ipv4_subnet=v4, ipv6_prefix=v6)
        )
    nics = [
        net.stub.CreateNic(net_pb2.CreateNicRequest(network_id=network))
        for network in ("prod", "prod", "other")
    ]
    for nic in nics:
        guests.append(ImageGuest(net.netns.name, nic.tap_name, nic.mac_address, initrd, kernel))
    for guest, nic in zip(guests, nics, strict=True):
        guest.wait_for(f"eth0: DHCPv4 {nic.ipv4_address}/32 via 169.254.0.1", BOOT_TIMEOUT)
        guest.wait_for(f"eth0: DHCPv6 {nic.ipv6_address}/128", BOOT_TIMEOUT)
        guest.wait_for("probe: ready", BOOT_TIMEOUT)
    a, b, c = nics
    guest_a, _, guest_c = guests
    states = {n.id: n.state for n in net.stub.ListNics(net_pb2.ListNicsRequest()).nics}
    assert set(states.values()) == {net_pb2.NIC_STATE_ACTIVE}

    assert guest_a.probe(a.ipv4_address, f"ping4 {b.ipv4_address}") == "ok"
    assert guest_a.probe(a.ipv4_address, f"ping6 {b.ipv6_address}") == "ok"
    assert guest_a.probe(a.ipv4_address, "ping4 169.254.0.1") == "ok"

    assert guest_c.probe(c.ipv4_address, f"ping4 {a.ipv4_address}") == "fail"
    assert guest_c.probe(c.ipv4_address, f"ping6 {a.ipv6_address}") == "fail"

    before = counter(net.netns, f"antispoof ipv4 {a.id}")
    assert guest_a.probe(a.ipv4_address, f"spoof4 10.200.0.99 {b.ipv4_address}") == "sent"
    assert counter(net.netns, f"antispoof ipv4 {a.id}") > before


STREAM_BYTES = 16 * 1024 * 1024


def test_a_tcp_stream_between_guests_arrives_intact(net, image, guests):
    kernel, initrd = image
    net.stub.CreateNetwork(
        net_pb2.CreateNetworkRequest(name="prod", ipv4_subnet="10.200.0.0/24",
                                     ipv6_prefix="fd00:200::/64")
    )  # fmt: skip
    nics = [net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod")) for _ in range(2)]
    for nic in nics:
        guests.append(ImageGuest(net.netns.name, nic.tap_name, nic.mac_address, initrd, kernel))
    for guest in guests:
        guest.wait_for("probe: ready", BOOT_TIMEOUT)
    a, b = nics
    for destination in (b.ipv4_address, b.ipv6_address):
        answer = guests[0].probe(a.ipv4_address, f"send {destination} {STREAM_BYTES}", 300)
        words = answer.split()
        assert len(words) == 6, answer
        _, sent, _seconds, _, received, intact = words
        assert (sent, received, intact) == (str(STREAM_BYTES), str(STREAM_BYTES), "1"), answer
