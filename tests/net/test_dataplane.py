"""The kernel data plane: guests on TAPs of one network reach each other through the
gateway, networks are isolated, spoofed sources are dropped, and a restart (even after
SIGKILL) rebuilds the same state without breaking running guests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mvirt.proto import net_pb2
from tests.net.conftest import NetDaemon
from tests.net.guest import NsGuest
from tests.net.kernel_state import counter, snapshot

pytestmark = pytest.mark.slow


@pytest.fixture
def guests() -> Iterator[list[NsGuest]]:
    """Guests a test attached; detached and removed afterwards."""
    made: list[NsGuest] = []
    yield made
    for guest in made:
        guest.close()


def attach(net: NetDaemon, guests: list[NsGuest], nic: net_pb2.Nic) -> NsGuest:
    guest = NsGuest(
        net.netns.name, nic.tap_name, nic.mac_address, nic.ipv4_address, nic.ipv6_address
    )
    guests.append(guest)
    return guest


def network(net: NetDaemon, name: str, v4: str, v6: str) -> None:
    net.stub.CreateNetwork(net_pb2.CreateNetworkRequest(name=name, ipv4_subnet=v4, ipv6_prefix=v6))


def nic(net: NetDaemon, network_name: str) -> net_pb2.Nic:
    return net.stub.CreateNic(net_pb2.CreateNicRequest(network_id=network_name))


def test_guests_of_one_network_reach_each_other_through_the_gateway(net, guests) -> None:
    network(net, "prod", "10.200.0.0/24", "fd00:200::/64")
    a, b = nic(net, "prod"), nic(net, "prod")
    guest_a, _ = attach(net, guests, a), attach(net, guests, b)
    assert guest_a.ping("169.254.0.1")
    assert guest_a.ping(b.ipv4_address)
    assert guest_a.ping(b.ipv6_address)
    states = {n.id: n.state for n in net.stub.ListNics(net_pb2.ListNicsRequest()).nics}
    assert states == {a.id: net_pb2.NIC_STATE_ACTIVE, b.id: net_pb2.NIC_STATE_ACTIVE}


def test_networks_are_isolated(net, guests) -> None:
    network(net, "a", "10.1.0.0/24", "fd00:1::/64")
    network(net, "b", "10.2.0.0/24", "fd00:2::/64")
    a1, a2, b1 = nic(net, "a"), nic(net, "a"), nic(net, "b")
    guest_a1, _, guest_b1 = (attach(net, guests, n) for n in (a1, a2, b1))
    assert guest_a1.ping(a2.ipv4_address)
    assert not guest_b1.ping(a1.ipv4_address)
    assert not guest_b1.ping(a1.ipv6_address)
    assert not guest_a1.ping(b1.ipv4_address)


def test_spoofed_source_is_counted_and_dropped(net, guests) -> None:
    network(net, "prod", "10.200.0.0/24", "fd00:200::/64")
    a, b = nic(net, "prod"), nic(net, "prod")
    guest_a, _ = attach(net, guests, a), attach(net, guests, b)
    assert guest_a.ping(b.ipv4_address)
    before = counter(net.netns, f"antispoof ipv4 {a.id}")
    guest_a.ns.run("ip", "addr", "add", "10.200.0.99/32", "dev", "eth0")
    assert not guest_a.ping(b.ipv4_address, source="10.200.0.99")
    assert counter(net.netns, f"antispoof ipv4 {a.id}") > before
    before6 = counter(net.netns, f"antispoof ipv6 {a.id}")
    guest_a.ns.run("ip", "addr", "add", "fd00:200::99/128", "dev", "eth0", "nodad")
    assert not guest_a.ping(b.ipv6_address, source="fd00:200::99")
    assert counter(net.netns, f"antispoof ipv6 {a.id}") > before6


def test_routed_prefix_is_forwarded_to_its_nic(net, guests) -> None:
    network(net, "prod", "10.200.0.0/24", "")
    a = net.stub.CreateNic(
        net_pb2.CreateNicRequest(network_id="prod", routed_ipv4_prefixes=["192.0.2.0/28"])
    )
    b = nic(net, "prod")
    guest_a, guest_b = attach(net, guests, a), attach(net, guests, b)
    guest_a.ns.run("ip", "addr", "add", "192.0.2.5/32", "dev", "lo")
    assert guest_b.ping("192.0.2.5")
    # The routed prefix is also an allowed source of that NIC.
    assert guest_a.ping(b.ipv4_address, source="192.0.2.5")


def test_restart_after_sigkill_keeps_guests_connected_and_state_identical(
    start_net, guests
) -> None:
    net = start_net()
    network(net, "prod", "10.200.0.0/24", "fd00:200::/64")
    a, b = nic(net, "prod"), nic(net, "prod")
    guest_a, _ = attach(net, guests, a), attach(net, guests, b)
    assert guest_a.ping(b.ipv4_address)
    before = snapshot(net.netns)
    # Something stale: a TAP of ours the database does not know.
    net.netns.run("ip", "tuntap", "add", "mvnstale0", "mode", "tap")
    net.kill()
    assert guest_a.ping(b.ipv4_address)  # the kernel forwards without the daemon
    again = start_net(data_dir=net.data_dir)
    assert snapshot(net.netns) == before
    assert guest_a.ping(b.ipv6_address) and guest_a.ping(b.ipv4_address)
    again.terminate()
    third = start_net(data_dir=net.data_dir)  # reconciling twice changes nothing
    assert snapshot(third.netns) == before
