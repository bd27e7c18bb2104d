"""``mvirt create --template --disk-size --network`` and ``mvirt delete --with-volumes
--with-nics`` against a node of real daemons: mvirt-zfs on a zfs-fuse pool, mvirt-net in a
network namespace of the test's own, mvirt-vmm and mvirt-log."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from mvirt.cli.exit_codes import ExitCode
from mvirt.cli.main import cli
from mvirt.proto import log_pb2, log_pb2_grpc
from tests.cli.boot_file import BOOT_FILE
from tests.cli.real_node import NETWORK, TEMPLATE, RealNode
from tests.conftest import free_port
from tests.zfs.conftest import zfs


def mvirt(node: RealNode, *args: str, **env: str):
    return CliRunner(env={**node.env, **env}).invoke(cli, list(args), catch_exceptions=False)


def create_web(node: RealNode):
    return mvirt(
        node,
        "create",
        "web",
        "--template",
        TEMPLATE,
        "--disk-size",
        "64M",
        "--network",
        NETWORK,
        "--kernel",
        str(BOOT_FILE),
        "--memory",
        "64",
        "-o",
        "json",
    )


def volume_datasets(node: RealNode) -> list[str]:
    parent = f"{node.zfs_daemon.pool}/volumes"
    listed = zfs("list", "-H", "-r", "-t", "all", "-o", "name", parent).stdout
    return [name for name in listed.split() if name != parent]


def test_create_makes_the_clone_the_nic_and_the_vm_and_delete_removes_all(real_node):
    created = create_web(real_node)
    assert created.exit_code == 0, created.output
    vm = json.loads(created.stdout)

    (volume,) = real_node.volumes()
    assert (volume.name, volume.volsize_bytes) == ("web-root", 64 << 20)
    assert len(volume_datasets(real_node)) == 1  # the clone of the template, in the pool
    (nic,) = real_node.nics()
    assert nic.name == "web-nic0" and nic.ipv4_address.startswith("10.200.0.")
    assert [d["path"] for d in vm["config"]["disks"]] == [volume.path]
    assert vm["config"]["nics"] == [{"mac": nic.mac_address, "tap": nic.tap_name}]
    assert [v.name for v in real_node.vms()] == ["web"]

    with real_node.log.channel() as channel:
        query = log_pb2.QueryRequest(object_id=nic.id, component="cli")
        entries = [e.message for e in log_pb2_grpc.LogServiceStub(channel).Query(query)]
    assert entries == [f"create web: created NIC web-nic0 ({nic.id}) on network {NETWORK}"]

    deleted = mvirt(real_node, "delete", "web", "--with-volumes", "--with-nics")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.splitlines() == [
        "deleted web",
        "deleted volume web-root",
        "deleted NIC web-nic0",
    ]
    assert real_node.vms() == [] and real_node.volumes() == [] and real_node.nics() == []
    assert volume_datasets(real_node) == []


def test_a_vm_the_vmm_refuses_leaves_nothing_in_any_daemon(real_node):
    taken = mvirt(real_node, "create", "web", "--kernel", str(BOOT_FILE))
    assert taken.exit_code == 0, taken.output
    refused = create_web(real_node)  # mvirt-vmm refuses the last step: the name is taken
    assert refused.exit_code == ExitCode.ALREADY_EXISTS, refused.output
    assert "the steps before it were undone" in refused.output
    assert real_node.volumes() == [] and volume_datasets(real_node) == []
    assert real_node.nics() == []
    assert [v.name for v in real_node.vms()] == ["web"]  # the first one, untouched


def cli_audit(node: RealNode) -> list[str]:
    with node.log.channel() as channel:
        query = log_pb2.QueryRequest(component="cli")
        return [e.message for e in log_pb2_grpc.LogServiceStub(channel).Query(query)]


def test_a_failed_nic_create_undoes_the_clone_and_makes_no_vm(real_node):
    result = mvirt(
        real_node,
        "create",
        "web",
        "--template",
        TEMPLATE,
        "--network",
        "nowhere",
        "--kernel",
        str(BOOT_FILE),
    )
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert "nowhere" in result.output and "the steps before it were undone" in result.output
    assert real_node.volumes() == [] and volume_datasets(real_node) == []
    assert real_node.vms() == [] and real_node.nics() == []
    undone = [e for e in cli_audit(real_node) if e.startswith("create web: undone after")]
    assert len(undone) == 1 and "volume web-root" in undone[0], cli_audit(real_node)


def test_an_absent_daemon_matters_only_when_its_option_is_used(real_node):
    absent = f"127.0.0.1:{free_port()}"
    result = mvirt(
        real_node,
        "create",
        "web",
        "--template",
        TEMPLATE,
        "--network",
        NETWORK,
        "--kernel",
        str(BOOT_FILE),
        MVIRT_NET_SERVER=absent,
    )
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "is mvirt-net running? (check the address with --net-server)" in result.output
    assert real_node.volumes() == [] and real_node.vms() == []  # the clone was undone

    plain = mvirt(
        real_node,
        "create",
        "db",
        "--kernel",
        str(BOOT_FILE),
        MVIRT_NET_SERVER=absent,
        MVIRT_ZFS_SERVER=absent,
        MVIRT_LOG_SERVER=absent,
    )
    assert plain.exit_code == 0, plain.output
    only_volume = mvirt(
        real_node,
        "create",
        "app",
        "--template",
        TEMPLATE,
        "--kernel",
        str(BOOT_FILE),
        MVIRT_NET_SERVER=absent,
        MVIRT_LOG_SERVER=absent,
    )
    assert only_volume.exit_code == 0, only_volume.output
    assert "audit entries not written" in only_volume.stderr
    assert [v.name for v in real_node.volumes()] == ["app-root"]
    assert real_node.nics() == []


def test_orchestration_options_are_checked_before_anything_is_made(real_node):
    nameless = mvirt(real_node, "create", "--template", TEMPLATE)
    assert nameless.exit_code == ExitCode.USAGE and "give NAME" in nameless.output
    sizeless = mvirt(real_node, "create", "web", "--disk-size", "20G")
    assert sizeless.exit_code == ExitCode.USAGE and "give --template" in sizeless.output
    bad = mvirt(real_node, "create", "web", "--template", TEMPLATE, "--disk-size", "lots")
    assert bad.exit_code == ExitCode.USAGE and "is not a size" in bad.output
    assert real_node.volumes() == [] and real_node.vms() == [] and real_node.nics() == []


def test_template_and_network_names_complete_from_their_daemons(real_node):
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            **real_node.env,
            "_MVIRT_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        }
        result = subprocess.run(
            [sys.executable, "-m", "mvirt.cli"],
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0 and not result.stderr, result.stderr
        return result.stdout.decode().split()

    assert complete("mvirt create web --template deb") == [f"plain,{TEMPLATE}"]
    assert complete("mvirt create web --network ") == [f"plain,{NETWORK}"]
