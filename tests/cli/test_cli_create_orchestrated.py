"""``mvirt create --template --network`` and ``mvirt delete --with-volumes --with-nics``
against a real mvirt-vmm and mvirt-log. mvirt-zfs (kernel ZFS) and mvirt-net are not on this
branch: in-test servers named fake_* stand in for them, keeping their objects in memory so the
tests can see what a create left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner

from mvirt.cli.exit_codes import ExitCode
from mvirt.cli.main import cli
from mvirt.cli.orchestrate import parse_size
from mvirt.proto import log_pb2, log_pb2_grpc, net_pb2, net_pb2_grpc, vmm_pb2, zfs_pb2, zfs_pb2_grpc
from tests.cli.boot_file import BOOT_FILE
from tests.conftest import free_port, log_daemon, start_log_daemon  # noqa: F401 (fixtures)
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture)


class FakeZfs(zfs_pb2_grpc.ZfsServiceServicer):
    """Templates and volumes in memory; a volume is a file so mvirt-vmm accepts its path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.templates = {"debian12"}
        self.volumes: dict[str, zfs_pb2.Volume] = {}
        self.refuse_deletes = False

    def CloneFromTemplate(self, request: Any, context: Any) -> Any:  # noqa: N802
        if request.template_name not in self.templates:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no template {request.template_name!r}")
        if request.new_volume_name in self.volumes:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "volume name taken")
        path = self.folder / request.new_volume_name
        path.write_bytes(b"\0" * 4096)
        volume = zfs_pb2.Volume(
            id=str(uuid.uuid4()),
            name=request.new_volume_name,
            path=str(path),
            volsize_bytes=request.size_bytes or 1 << 30,
        )
        self.volumes[volume.name] = volume
        return volume

    def DeleteVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        if self.refuse_deletes:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "volume is busy")
        if request.name not in self.volumes:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no volume {request.name!r}")
        Path(self.volumes.pop(request.name).path).unlink()
        return zfs_pb2.DeleteVolumeResponse(deleted=True)

    def ListVolumes(self, request: Any, context: Any) -> Any:  # noqa: N802
        return zfs_pb2.ListVolumesResponse(volumes=list(self.volumes.values()))

    def ListTemplates(self, request: Any, context: Any) -> Any:  # noqa: N802
        templates = [zfs_pb2.Template(name=name) for name in self.templates]
        return zfs_pb2.ListTemplatesResponse(templates=templates)


class FakeNet(net_pb2_grpc.NetServiceServicer):
    """Networks and NICs in memory; NICs are TAP-backed."""

    def __init__(self) -> None:
        self.networks = {"prod": "net-prod-id"}
        self.nics: dict[str, net_pb2.Nic] = {}

    def CreateNic(self, request: Any, context: Any) -> Any:  # noqa: N802
        network = self.networks.get(request.network_id)
        if network is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no network {request.network_id!r}")
        nic_id = str(uuid.uuid4())
        nic = net_pb2.Nic(
            id=nic_id,
            name=request.name,
            network_id=network,
            mac_address="52:54:00:00:00:01",
            tap_name=f"mvt{nic_id[:8]}",
        )
        self.nics[nic_id] = nic
        return nic

    def DeleteNic(self, request: Any, context: Any) -> Any:  # noqa: N802
        if self.nics.pop(request.id, None) is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no NIC {request.id!r}")
        return net_pb2.DeleteNicResponse(deleted=True)

    def ListNics(self, request: Any, context: Any) -> Any:  # noqa: N802
        return net_pb2.ListNicsResponse(nics=list(self.nics.values()))

    def ListNetworks(self, request: Any, context: Any) -> Any:  # noqa: N802
        networks = [net_pb2.Network(id=i, name=name) for name, i in self.networks.items()]
        return net_pb2.ListNetworksResponse(networks=networks)


def fake_server(add: Any, servicer: Any) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def node(start_vmm, log_daemon, tmp_path) -> Iterator[Any]:  # noqa: F811
    """Real mvirt-vmm and mvirt-log; fake_zfs and fake_net servers."""
    vmm = start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    (tmp_path / "volumes").mkdir()
    zfs, net = FakeZfs(tmp_path / "volumes"), FakeNet()
    zfs_server, zfs_address = fake_server(zfs_pb2_grpc.add_ZfsServiceServicer_to_server, zfs)
    net_server, net_address = fake_server(net_pb2_grpc.add_NetServiceServicer_to_server, net)

    class Node:
        pass

    node = Node()
    node.vmm, node.zfs, node.net, node.log = vmm, zfs, net, log_daemon  # type: ignore[attr-defined]
    node.env = {  # type: ignore[attr-defined]
        "MVIRT_SERVER": vmm.daemon.endpoint,
        "MVIRT_LOG_SERVER": log_daemon.endpoint,
        "MVIRT_ZFS_SERVER": zfs_address,
        "MVIRT_NET_SERVER": net_address,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    yield node
    zfs_server.stop(None)
    net_server.stop(None)


def mvirt(node: Any, *args: str, **env: str):
    return CliRunner(env={**node.env, **env}).invoke(cli, list(args), catch_exceptions=False)


def audit(node: Any, object_id: str) -> list[str]:
    with grpc.insecure_channel(node.log.endpoint) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        entries = stub.Query(log_pb2.QueryRequest(object_id=object_id, component="cli"))
        return [e.message for e in entries]


def vms(node: Any) -> list[vmm_pb2.Vm]:
    return list(node.vmm.stub.ListVms(vmm_pb2.ListVmsRequest()).vms)


def test_create_clones_a_volume_makes_a_nic_then_the_vm_and_delete_removes_them(node):
    created = mvirt(
        node,
        "create",
        "web",
        "--template",
        "debian12",
        "--disk-size",
        "20G",
        "--network",
        "prod",
        "--kernel",
        str(BOOT_FILE),
        "--memory",
        "64",
        "-o",
        "json",
    )
    assert created.exit_code == 0, created.output
    vm = json.loads(created.stdout)
    volume = node.zfs.volumes["web-root"]
    assert volume.volsize_bytes == 20 << 30
    (nic,) = node.net.nics.values()
    assert nic.name == "web-nic0"
    assert [d["path"] for d in vm["config"]["disks"]] == [volume.path]
    assert vm["config"]["nics"] == [{"mac": nic.mac_address, "tap": nic.tap_name}]

    # Each step is in the audit log, found by the ids of what it touched.
    assert audit(node, volume.id) == [
        f"create web: cloned volume web-root ({volume.id}) from template debian12"
    ]
    assert audit(node, nic.id) == [f"create web: created NIC web-nic0 ({nic.id}) on network prod"]
    assert audit(node, vm["id"]) == [f"create web: created VM web ({vm['id']})"]

    deleted = mvirt(node, "delete", "web", "--with-volumes", "--with-nics")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.splitlines() == [
        "deleted web",
        "deleted volume web-root",
        "deleted NIC web-nic0",
    ]
    assert vms(node) == [] and node.zfs.volumes == {} and node.net.nics == {}


def test_a_failed_vm_create_undoes_the_volume_and_the_nic(node):
    assert mvirt(node, "create", "web", "--kernel", str(BOOT_FILE)).exit_code == 0
    taken = mvirt(
        node,
        "create",
        "web",
        "--template",
        "debian12",
        "--network",
        "prod",
        "--kernel",
        str(BOOT_FILE),
    )
    assert taken.exit_code == ExitCode.ALREADY_EXISTS, taken.output
    assert "ALREADY_EXISTS" in taken.output and "the steps before it were undone" in taken.output
    assert node.zfs.volumes == {} and node.net.nics == {}
    assert [vm.name for vm in vms(node)] == ["web"]  # the first one, untouched


def test_a_failed_nic_create_undoes_the_volume_and_makes_no_vm(node):
    result = mvirt(
        node,
        "create",
        "web",
        "--template",
        "debian12",
        "--network",
        "nowhere",
        "--kernel",
        str(BOOT_FILE),
    )
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert "no network 'nowhere'" in result.output
    assert node.zfs.volumes == {} and vms(node) == []
    entries = _all_cli_entries(node)
    assert any(e.startswith("create web: undone after NOT_FOUND: volume web-root") for e in entries)


def _all_cli_entries(node: Any) -> list[str]:
    with grpc.insecure_channel(node.log.endpoint) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        return [e.message for e in stub.Query(log_pb2.QueryRequest(component="cli"))]


def test_an_absent_daemon_matters_only_when_its_option_is_used(node):
    absent = f"127.0.0.1:{free_port()}"
    result = mvirt(
        node,
        "create",
        "web",
        "--template",
        "debian12",
        "--network",
        "prod",
        "--kernel",
        str(BOOT_FILE),
        MVIRT_NET_SERVER=absent,
    )
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "is mvirt-net running? (check the address with --net-server)" in result.output
    assert node.zfs.volumes == {} and vms(node) == []  # the clone was undone

    plain = mvirt(
        node,
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
        node,
        "create",
        "app",
        "--template",
        "debian12",
        "--kernel",
        str(BOOT_FILE),
        MVIRT_NET_SERVER=absent,
        MVIRT_LOG_SERVER=absent,
    )
    assert only_volume.exit_code == 0, only_volume.output
    assert "audit entries not written" in only_volume.stderr
    assert list(node.zfs.volumes) == ["app-root"]


def test_orchestration_options_are_checked_before_anything_is_made(node):
    nameless = mvirt(node, "create", "--template", "debian12")
    assert nameless.exit_code == ExitCode.USAGE and "give NAME" in nameless.output
    sizeless = mvirt(node, "create", "web", "--disk-size", "20G")
    assert sizeless.exit_code == ExitCode.USAGE and "give --template" in sizeless.output
    bad = mvirt(node, "create", "web", "--template", "debian12", "--disk-size", "lots")
    assert bad.exit_code == ExitCode.USAGE and "is not a size" in bad.output
    assert node.zfs.volumes == {} and vms(node) == []


def test_parse_size():
    assert parse_size("20G") == parse_size("20GiB") == 20 << 30
    assert parse_size("512m") == 512 << 20 and parse_size("4096") == 4096
    for bad in ("0", "-1G", "1.5G", "20X", ""):
        with pytest.raises(Exception, match="is not a size"):
            parse_size(bad)


def test_template_and_network_names_complete_from_their_daemons(node):
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            **node.env,
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

    assert complete("mvirt create web --template deb") == ["plain,debian12"]
    assert complete("mvirt create web --network ") == ["plain,prod"]


def test_an_undo_that_fails_names_what_is_left_and_how_to_remove_it(node):
    node.zfs.refuse_deletes = True
    result = mvirt(node, "create", "web", "--template", "debian12", "--network", "nowhere")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert result.output.strip().endswith("(volume web-root is left: mvirt volume delete web-root)")
    assert list(node.zfs.volumes) == ["web-root"]
    entries = _all_cli_entries(node)
    undo = "create web: could not undo: volume web-root (FAILED_PRECONDITION: volume is busy)"
    assert undo in entries, entries
