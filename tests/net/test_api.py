"""NetService over gRPC against the real daemon inside a test namespace: every RPC,
allocation, validation and persistence."""

from __future__ import annotations

import json

import grpc
import pytest

from mvirt.proto import net_pb2
from tests.net.conftest import NetDaemon


def create_network(net: NetDaemon, name: str = "prod", **fields) -> net_pb2.Network:
    fields.setdefault("ipv4_subnet", "10.200.0.0/24")
    fields.setdefault("ipv6_prefix", "fd00:200::/64")
    return net.stub.CreateNetwork(net_pb2.CreateNetworkRequest(name=name, **fields))


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_version_is_reported(net: NetDaemon) -> None:
    assert net.stub.GetVersion(net_pb2.GetVersionRequest()).version


def test_network_is_created_listed_and_found_by_id_and_name(net: NetDaemon) -> None:
    made = create_network(net, dns_servers=["10.200.0.53"], ntp_servers=["fd00:200::123"])
    assert made.ipv4_enabled and made.ipv6_enabled
    assert (made.ipv4_subnet, made.ipv6_prefix) == ("10.200.0.0/24", "fd00:200::/64")
    assert list(made.dns_servers) == ["10.200.0.53"]
    assert made.created_at and made.updated_at
    by_id = net.stub.GetNetwork(net_pb2.GetNetworkRequest(id=made.id))
    by_name = net.stub.GetNetwork(net_pb2.GetNetworkRequest(name="prod"))
    assert by_id == by_name == made
    assert [n.id for n in net.stub.ListNetworks(net_pb2.ListNetworksRequest()).networks] == [
        made.id
    ]


def test_ipv4_only_network_has_no_ipv6(net: NetDaemon) -> None:
    made = create_network(net, "v4only", ipv6_prefix="")
    assert made.ipv4_enabled and not made.ipv6_enabled and made.ipv6_prefix == ""
    nic = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id=made.id))
    assert nic.ipv4_address == "10.200.0.1" and nic.ipv6_address == ""


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"ipv4_subnet": "10.200.0.0/33"}, "ipv4_subnet"),
        ({"ipv4_subnet": "10.200.0.1/24"}, "host bits"),
        ({"ipv4_subnet": "banana"}, "ipv4_subnet"),
        ({"ipv4_subnet": "169.254.0.0/24"}, "reserved"),
        ({"ipv4_subnet": "fd00::/64"}, "not an IPv4 prefix"),
        ({"ipv6_prefix": "fe80::/64"}, "ipv6_prefix"),
        ({"ipv6_prefix": "fd00::/127"}, "/127"),
        ({"ipv4_subnet": "", "ipv6_prefix": ""}, "needs ipv4_subnet"),
        ({"ipv4_subnet": "", "ipv4_enabled": True}, "ipv4_subnet is empty"),
        ({"dns_servers": ["dns.example"]}, "dns_servers"),
    ],
)
def test_malformed_network_is_refused_naming_the_field(net: NetDaemon, fields, needle) -> None:
    code, details = status_of(lambda: create_network(net, **fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in details
    assert not net.stub.ListNetworks(net_pb2.ListNetworksRequest()).networks


def test_bad_network_name_is_refused(net: NetDaemon) -> None:
    code, details = status_of(lambda: create_network(net, "bad name/../x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "name" in details


def test_duplicate_name_and_overlapping_subnets_are_refused(net: NetDaemon) -> None:
    create_network(net)
    code, details = status_of(
        lambda: create_network(net, ipv4_subnet="10.201.0.0/24", ipv6_prefix="fd00:201::/64")
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and "prod" in details
    code, details = status_of(
        lambda: create_network(net, "other", ipv4_subnet="10.200.0.128/25", ipv6_prefix="")
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and "10.200.0.0/24" in details
    code, details = status_of(
        lambda: create_network(net, "other", ipv4_subnet="", ipv6_prefix="fd00:200::/48")
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS and "fd00:200::/64" in details
    assert len(net.stub.ListNetworks(net_pb2.ListNetworksRequest()).networks) == 1


def test_nic_gets_the_lowest_free_addresses_a_local_mac_and_a_tap(net: NetDaemon) -> None:
    network = create_network(net)
    first = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod", name="web-nic"))
    second = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id=network.id))
    assert (first.ipv4_address, first.ipv6_address) == ("10.200.0.1", "fd00:200::1")
    assert (second.ipv4_address, second.ipv6_address) == ("10.200.0.2", "fd00:200::2")
    for nic in (first, second):
        assert nic.network_id == network.id
        octet = int(nic.mac_address[:2], 16)
        assert octet & 0b10 and not octet & 1  # locally administered, unicast
        assert nic.tap_name.startswith("mvn") and len(nic.tap_name) <= 15
        assert nic.socket_path == nic.tap_name
        assert nic.state == net_pb2.NIC_STATE_CREATED  # no hypervisor holds the TAP yet
        links = json.loads(net.netns.run("ip", "-j", "link", "show", nic.tap_name).stdout)
        assert links[0]["address"] != nic.mac_address  # the host side has its own MAC
    assert first.mac_address != second.mac_address
    assert net.stub.GetNic(net_pb2.GetNicRequest(name="web-nic")) == first
    assert net.stub.GetNetwork(net_pb2.GetNetworkRequest(id=network.id)).nic_count == 2


def test_freed_address_is_given_out_again(net: NetDaemon) -> None:
    create_network(net)
    first = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    net.stub.DeleteNic(net_pb2.DeleteNicRequest(id=first.id))
    again = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    assert again.ipv4_address == first.ipv4_address


def test_requested_addresses_are_honoured_and_conflicts_refused(net: NetDaemon) -> None:
    create_network(net)
    nic = net.stub.CreateNic(
        net_pb2.CreateNicRequest(
            network_id="prod",
            ipv4_address="10.200.0.77",
            ipv6_address="fd00:200::77",
            mac_address="02:AA:bb:cc:dd:ee",
        )
    )
    assert (nic.ipv4_address, nic.ipv6_address) == ("10.200.0.77", "fd00:200::77")
    assert nic.mac_address == "02:aa:bb:cc:dd:ee"
    for fields, code, needle in [
        ({"ipv4_address": "10.200.0.77"}, grpc.StatusCode.ALREADY_EXISTS, "ipv4_address"),
        ({"ipv6_address": "fd00:200::77"}, grpc.StatusCode.ALREADY_EXISTS, "ipv6_address"),
        ({"mac_address": "02:aa:bb:cc:dd:ee"}, grpc.StatusCode.ALREADY_EXISTS, "mac_address"),
        ({"ipv4_address": "10.9.0.1"}, grpc.StatusCode.INVALID_ARGUMENT, "10.200.0.0/24"),
        ({"ipv4_address": "10.200.0.255"}, grpc.StatusCode.INVALID_ARGUMENT, "broadcast"),
        ({"ipv4_address": "10.200.0.5/24"}, grpc.StatusCode.INVALID_ARGUMENT, "ipv4_address"),
        ({"ipv6_address": "fd00:999::1"}, grpc.StatusCode.INVALID_ARGUMENT, "fd00:200::/64"),
        ({"mac_address": "01:00:5e:00:00:01"}, grpc.StatusCode.INVALID_ARGUMENT, "multicast"),
        ({"mac_address": "zz"}, grpc.StatusCode.INVALID_ARGUMENT, "mac_address"),
        ({"network_id": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({"network_id": ""}, grpc.StatusCode.INVALID_ARGUMENT, "network_id"),
    ]:
        request = net_pb2.CreateNicRequest(network_id="prod")
        for key, value in fields.items():
            setattr(request, key, value)
        got, details = status_of(lambda request=request: net.stub.CreateNic(request))
        assert (got, needle in details) == (code, True), (fields, details)
    assert len(net.stub.ListNics(net_pb2.ListNicsRequest()).nics) == 1


def test_full_network_is_resource_exhausted(net: NetDaemon) -> None:
    create_network(net, ipv4_subnet="10.9.9.0/30", ipv6_prefix="")
    net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    code, details = status_of(
        lambda: net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "IPv4" in details
    assert len(net.stub.ListNics(net_pb2.ListNicsRequest()).nics) == 2


def test_routed_prefixes_are_validated_and_replaced(net: NetDaemon) -> None:
    create_network(net)
    nic = net.stub.CreateNic(
        net_pb2.CreateNicRequest(network_id="prod", routed_ipv4_prefixes=["192.0.2.0/28"])
    )
    assert list(nic.routed_ipv4_prefixes) == ["192.0.2.0/28"]
    for v4, v6, code in [
        (["10.200.0.0/28"], [], grpc.StatusCode.ALREADY_EXISTS),
        (["192.0.2.0/28"], [], grpc.StatusCode.ALREADY_EXISTS),
        (["192.0.3.1/28"], [], grpc.StatusCode.INVALID_ARGUMENT),
        (["0.0.0.0/0"], [], grpc.StatusCode.INVALID_ARGUMENT),
        (["198.51.100.0/24", "198.51.100.128/25"], [], grpc.StatusCode.INVALID_ARGUMENT),
        ([], ["fd00:200::/120"], grpc.StatusCode.ALREADY_EXISTS),
        ([], ["2001:db8::/129"], grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        request = net_pb2.CreateNicRequest(
            network_id="prod", routed_ipv4_prefixes=v4, routed_ipv6_prefixes=v6
        )
        got, details = status_of(lambda request=request: net.stub.CreateNic(request))
        assert got == code, (v4, v6, details)
        assert "routed" in details or "prefix" in details
    updated = net.stub.UpdateNic(
        net_pb2.UpdateNicRequest(
            id=nic.id,
            routed_ipv4_prefixes=["192.0.2.16/28"],
            routed_ipv6_prefixes=["2001:db8::/64"],
        )
    )
    assert list(updated.routed_ipv4_prefixes) == ["192.0.2.16/28"]
    assert list(updated.routed_ipv6_prefixes) == ["2001:db8::/64"]
    assert net.stub.GetNic(net_pb2.GetNicRequest(id=nic.id)) == updated


def test_update_network_replaces_dns_and_ntp(net: NetDaemon) -> None:
    made = create_network(net, dns_servers=["10.200.0.53"])
    updated = net.stub.UpdateNetwork(
        net_pb2.UpdateNetworkRequest(id=made.id, dns_servers=["1.1.1.1"], ntp_servers=["10.0.0.1"])
    )
    assert list(updated.dns_servers) == ["1.1.1.1"] and list(updated.ntp_servers) == ["10.0.0.1"]
    assert net.stub.GetNetwork(net_pb2.GetNetworkRequest(id=made.id)) == updated
    code, details = status_of(
        lambda: net.stub.UpdateNetwork(net_pb2.UpdateNetworkRequest(id=made.id, dns_servers=["x"]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "dns_servers" in details


def test_delete_network_with_nics_needs_force(net: NetDaemon) -> None:
    made = create_network(net)
    nic = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    code, details = status_of(
        lambda: net.stub.DeleteNetwork(net_pb2.DeleteNetworkRequest(id=made.id))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "force" in details
    assert net.stub.GetNic(net_pb2.GetNicRequest(id=nic.id)).id == nic.id
    reply = net.stub.DeleteNetwork(net_pb2.DeleteNetworkRequest(id=made.id, force=True))
    assert reply.deleted and reply.nics_deleted == 1
    assert net.netns.run("ip", "link", "show", nic.tap_name, check=False).returncode != 0
    assert not net.stub.ListNics(net_pb2.ListNicsRequest()).nics


def test_unknown_ids_are_not_found(net: NetDaemon) -> None:
    calls = [
        lambda: net.stub.GetNetwork(net_pb2.GetNetworkRequest(id="missing")),
        lambda: net.stub.UpdateNetwork(net_pb2.UpdateNetworkRequest(id="missing")),
        lambda: net.stub.DeleteNetwork(net_pb2.DeleteNetworkRequest(id="missing")),
        lambda: net.stub.GetNic(net_pb2.GetNicRequest(id="missing")),
        lambda: net.stub.GetNic(net_pb2.GetNicRequest(name="missing")),
        lambda: net.stub.UpdateNic(net_pb2.UpdateNicRequest(id="missing")),
        lambda: net.stub.DeleteNic(net_pb2.DeleteNicRequest(id="missing")),
        lambda: net.stub.ListNics(net_pb2.ListNicsRequest(network_id="missing")),
    ]
    for call in calls:
        code, details = status_of(call)
        assert code == grpc.StatusCode.NOT_FOUND and "missing" in details


def test_list_nics_filters_by_network(net: NetDaemon) -> None:
    create_network(net, "a", ipv4_subnet="10.1.0.0/24", ipv6_prefix="")
    create_network(net, "b", ipv4_subnet="10.2.0.0/24", ipv6_prefix="")
    in_a = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="a"))
    in_b = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="b"))
    assert [n.id for n in net.stub.ListNics(net_pb2.ListNicsRequest(network_id="a")).nics] == [
        in_a.id
    ]
    everything = net.stub.ListNics(net_pb2.ListNicsRequest()).nics
    assert {n.id for n in everything} == {in_a.id, in_b.id}


def test_state_survives_a_restart(start_net) -> None:
    first = start_net()
    made = create_network(first)
    nic = first.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod", name="keep"))
    assert first.terminate() == 0
    second = start_net(data_dir=first.data_dir)
    made.nic_count = 1
    assert second.stub.GetNetwork(net_pb2.GetNetworkRequest(id=made.id)) == made
    assert second.stub.GetNic(net_pb2.GetNicRequest(name="keep")) == nic
