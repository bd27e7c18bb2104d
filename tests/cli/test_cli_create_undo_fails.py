"""Orchestrated create where a step must fail on purpose: an undo that fails too. No real
mvirt-zfs refuses to delete a volume it just cloned, so an in-test server named fake_zfs
stands in for it here (with real mvirt-vmm and mvirt-log). Everything else about orchestrated
create runs on real daemons: test_cli_create_on_real_daemons.py."""

from __future__ import annotations

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
from mvirt.proto import log_pb2, log_pb2_grpc, vmm_pb2, zfs_pb2, zfs_pb2_grpc
from tests.cli.boot_file import BOOT_FILE
from tests.conftest import free_port, log_daemon, start_log_daemon  # noqa: F401 (fixtures)
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture)


class FakeZfs(zfs_pb2_grpc.ZfsServiceServicer):
    """Clones a template into a file (so mvirt-vmm accepts its path); refuses every delete."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.volumes: dict[str, zfs_pb2.Volume] = {}

    def CloneFromTemplate(self, request: Any, context: Any) -> Any:  # noqa: N802
        path = self.folder / request.new_volume_name
        path.write_bytes(b"\0" * 4096)
        volume = zfs_pb2.Volume(
            id=str(uuid.uuid4()), name=request.new_volume_name, path=str(path), volsize_bytes=4096
        )
        self.volumes[volume.name] = volume
        return volume

    def DeleteVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "volume is busy")


@pytest.fixture
def fake_zfs(tmp_path) -> Iterator[tuple[FakeZfs, str]]:
    """The refusing fake_zfs server and its address."""
    servicer = FakeZfs(tmp_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    zfs_pb2_grpc.add_ZfsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def test_parse_size():
    assert parse_size("20G") == parse_size("20GiB") == 20 << 30
    assert parse_size("512m") == 512 << 20 and parse_size("4096") == 4096
    for bad in ("0", "-1G", "1.5G", "20X", ""):
        with pytest.raises(Exception, match="is not a size"):
            parse_size(bad)


def test_an_undo_that_fails_names_what_is_left_and_how_to_remove_it(
    start_vmm,  # noqa: F811
    log_daemon,  # noqa: F811
    fake_zfs,
    tmp_path,
):
    vmm = start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    zfs, zfs_address = fake_zfs
    env = {
        "MVIRT_SERVER": vmm.daemon.endpoint,
        "MVIRT_LOG_SERVER": log_daemon.endpoint,
        "MVIRT_ZFS_SERVER": zfs_address,
        "MVIRT_NET_SERVER": f"127.0.0.1:{free_port()}",  # absent: the NIC step fails
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    args = ["create", "web", "--template", "debian12", "--network", "prod"]
    result = CliRunner(env=env).invoke(cli, [*args, "--kernel", str(BOOT_FILE)])
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert result.output.strip().endswith("(volume web-root is left: mvirt volume delete web-root)")
    assert list(zfs.volumes) == ["web-root"]
    assert list(vmm.stub.ListVms(vmm_pb2.ListVmsRequest()).vms) == []
    with grpc.insecure_channel(log_daemon.endpoint) as channel:
        query = log_pb2.QueryRequest(component="cli")
        entries = [e.message for e in log_pb2_grpc.LogServiceStub(channel).Query(query)]
    undo = "create web: could not undo: volume web-root (FAILED_PRECONDITION: volume is busy)"
    assert undo in entries, entries
