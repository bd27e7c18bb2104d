"""``mvirt network`` / ``mvirt nic`` against the real daemon, and the audit entries every
mutation leaves in a real mvirt-log."""

from __future__ import annotations

import json
import sys
import time

import grpc
import pytest
from click.testing import CliRunner

from mvirt.cli.exit_codes import ExitCode
from mvirt.cli.main import cli
from mvirt.proto import log_pb2, log_pb2_grpc, net_pb2
from tests.net.conftest import NetDaemon
from tests.net.netns import Relay

LOG_PORT = 50052


def mvirt(net: NetDaemon, *args: str):
    runner = CliRunner(env={"MVIRT_NET_SERVER": net.relay.endpoint})
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_network_and_nic_commands(net: NetDaemon) -> None:
    made = mvirt(
        net, "network", "create", "prod", "--ipv4", "10.200.0.0/24", "--ipv6", "fd00:200::/64",
        "--dns", "10.200.0.53", "-o", "json",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    network = json.loads(made.output)
    assert network["ipv4_subnet"] == "10.200.0.0/24" and network["dns_servers"] == ["10.200.0.53"]
    nic = json.loads(
        mvirt(
            net,
            "nic",
            "create",
            "web-nic",
            "--network",
            "prod",
            "--route",
            "192.0.2.0/28",
            "-o",
            "json",
        ).output
    )
    assert nic["ipv4_address"] == "10.200.0.1" and nic["routed_ipv4_prefixes"] == ["192.0.2.0/28"]
    table = mvirt(net, "nic", "list", "--network", "prod").output
    assert "web-nic" in table and nic["tap_name"] in table and "CREATED" in table
    assert "prod" in mvirt(net, "network", "list").output
    shown = mvirt(net, "network", "get", "prod").output
    assert network["id"] in shown and "10.200.0.53" in shown
    updated = mvirt(net, "nic", "update", "web-nic", "--route", "fd00:999::/64", "-o", "json")
    assert json.loads(updated.output)["routed_ipv6_prefixes"] == ["fd00:999::/64"]
    refused = mvirt(net, "network", "delete", "prod")
    assert refused.exit_code == 1
    assert "FAILED_PRECONDITION" in refused.output and "force" in refused.output
    assert "Traceback" not in refused.output
    deleted = mvirt(net, "network", "delete", "prod", "--force")
    assert deleted.exit_code == 0 and "1 NIC(s)" in deleted.output
    assert mvirt(net, "nic", "list", "-o", "json").output == ""
    assert mvirt(net, "nic", "list").output.split() == [
        "ID", "NAME", "STATE", "TAP", "MAC", "IPV4", "IPV6"
    ]  # fmt: skip


def test_bad_input_is_one_line_without_traceback(net: NetDaemon) -> None:
    result = mvirt(net, "network", "create", "prod", "--ipv4", "10.0.0.1/24")
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT" in result.output and "ipv4_subnet" in result.output
    assert "Traceback" not in result.output
    missing = mvirt(net, "nic", "get", "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND and "NOT_FOUND" in missing.output


def test_unreachable_server_names_the_flag(netns) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["network", "list", "--net-server", "127.0.0.1:9"])
    assert result.exit_code == ExitCode.UNAVAILABLE and "--net-server" in result.output


@pytest.fixture
def log_in_netns(netns, tmp_path):
    proc = netns.popen(
        [
            sys.executable,
            "-m",
            "mvirt.log",
            "--listen",
            f"127.0.0.1:{LOG_PORT}",
            "--data-dir",
            str(tmp_path / "log"),
        ],
        tmp_path / "log.stderr",
    )
    relay = Relay(netns.name, LOG_PORT)
    yield relay
    relay.close()
    proc.kill()
    proc.wait(10)


def test_every_mutation_is_audited_with_related_ids(start_net, log_in_netns) -> None:
    net = start_net(log_endpoint=f"127.0.0.1:{LOG_PORT}")
    made = net.stub.CreateNetwork(
        net_pb2.CreateNetworkRequest(name="prod", ipv4_subnet="10.200.0.0/24")
    )
    nic = net.stub.CreateNic(net_pb2.CreateNicRequest(network_id="prod"))
    net.stub.UpdateNic(net_pb2.UpdateNicRequest(id=nic.id, routed_ipv4_prefixes=["192.0.2.0/28"]))
    net.stub.DeleteNic(net_pb2.DeleteNicRequest(id=nic.id))
    net.stub.DeleteNetwork(net_pb2.DeleteNetworkRequest(id=made.id))
    with grpc.insecure_channel(log_in_netns.endpoint) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        deadline = time.monotonic() + 30
        entries: list[log_pb2.LogEntry] = []
        while time.monotonic() < deadline:
            try:
                entries = list(stub.Query(log_pb2.QueryRequest(object_id=nic.id), timeout=5))
            except grpc.RpcError:
                entries = []
            if len(entries) >= 3:
                break
            time.sleep(0.1)
        messages = [e.message for e in entries]
        assert len(messages) == 3, messages
        assert "created" in messages[0] and "routes" in messages[1] and "deleted" in messages[2]
        assert all(e.component == "net" and e.level == log_pb2.AUDIT for e in entries)
        assert made.id in entries[0].related_object_ids
        # The network's own entries: created, the NIC's three, deleted (they arrive in batches,
        # so wait for the last one rather than reading what is there now).
        network_entries: list[log_pb2.LogEntry] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            query = log_pb2.QueryRequest(object_id=made.id)
            network_entries = list(stub.Query(query, timeout=5))
            if any(e.message.startswith("network prod deleted") for e in network_entries):
                break
            time.sleep(0.1)
        assert network_entries[-1].message.startswith("network prod deleted"), network_entries
