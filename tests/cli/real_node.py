"""A whole node of real daemons for the client's tests: mvirt-vmm (on the fake
cloud-hypervisor), mvirt-log, mvirt-zfs on a zfs-fuse pool in a file (with a template) and
mvirt-net inside a network namespace the test creates (with a network) — the fixtures the
daemons' own tests use."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from mvirt.proto import (
    net_pb2,
    net_pb2_grpc,
    vmm_pb2,
    vmm_pb2_grpc,
    zfs_pb2,
    zfs_pb2_grpc,
)
from tests.conftest import DaemonProcess
from tests.net.conftest import NetDaemon
from tests.net.netns import Netns
from tests.vmm.conftest import FAKE_CH, hypervisor_pids, image_root_args, short_tmpdir
from tests.zfs.conftest import POOL_FILE_SIZE, ZfsDaemon, destroy_pool, zpool

TEMPLATE = "debian12"
NETWORK = "prod"
TEMPLATE_BYTES = 4 << 20
_pools = itertools.count()


@dataclass
class RealNode:
    """The four daemons and a stub for each; ``env`` points ``mvirt`` at them."""

    vmm_endpoint: str
    log: DaemonProcess
    zfs_daemon: ZfsDaemon
    net_daemon: NetDaemon
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vmm_channel = grpc.insecure_channel(self.vmm_endpoint)
        self.zfs_channel = grpc.insecure_channel(self.zfs_daemon.endpoint)
        self.vmm = vmm_pb2_grpc.VmServiceStub(self.vmm_channel)
        self.zfs = zfs_pb2_grpc.ZfsServiceStub(self.zfs_channel)
        self.net = net_pb2_grpc.NetServiceStub(self.net_daemon.channel)

    def close(self) -> None:
        """Closes the test's own channels."""
        self.vmm_channel.close()
        self.zfs_channel.close()

    def vms(self) -> list[vmm_pb2.Vm]:
        """Every VM mvirt-vmm has."""
        return list(self.vmm.ListVms(vmm_pb2.ListVmsRequest()).vms)

    def volumes(self) -> list[zfs_pb2.Volume]:
        """Every volume mvirt-zfs has."""
        return list(self.zfs.ListVolumes(zfs_pb2.ListVolumesRequest()).volumes)

    def nics(self) -> list[net_pb2.Nic]:
        """Every NIC mvirt-net has."""
        return list(self.net.ListNics(net_pb2.ListNicsRequest()).nics)


def add_template(stub: zfs_pb2_grpc.ZfsServiceStub, folder: Path, name: str = TEMPLATE) -> None:
    """Imports a small raw image from ``folder`` (the daemon's import root) as a template."""
    image = folder / f"{name}.raw"
    with open(image, "wb") as file:
        file.truncate(TEMPLATE_BYTES)
        file.write(b"mvirt test template\n")
    job = stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name=name, source=str(image)))
    deadline = time.monotonic() + 120
    while job.state != zfs_pb2.IMPORT_JOB_STATE_COMPLETED:
        assert job.state not in (
            zfs_pb2.IMPORT_JOB_STATE_FAILED,
            zfs_pb2.IMPORT_JOB_STATE_CANCELLED,
        ), job
        if time.monotonic() > deadline:
            pytest.fail(f"template import still {job.state} after 120 s")
        time.sleep(0.05)
        job = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job.id))


def add_network(stub: net_pb2_grpc.NetServiceStub, name: str = NETWORK) -> net_pb2.Network:
    """A network with both address families."""
    request = net_pb2.CreateNetworkRequest(
        name=name,
        ipv4_enabled=True,
        ipv4_subnet="10.200.0.0/24",
        ipv6_enabled=True,
        ipv6_prefix="fd00:200::/64",
    )
    return stub.CreateNetwork(request)


def vmm_args() -> tuple[str, ...]:
    """mvirt-vmm on the fake cloud-hypervisor (no guest runs)."""
    return ("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))


@contextlib.contextmanager
def running_node(folder: Path) -> Iterator[RealNode]:
    """Starts the four daemons (state and images under ``folder``), adds the template and
    the network, and stops everything again at the end (the VMs' hypervisors, the pool and
    the namespace included). Needs a running zfs-fuse (the ``zfs_service`` fixture)."""
    with contextlib.ExitStack() as stack:
        log = DaemonProcess("mvirt.log", folder / "log-data").start()
        stack.callback(log.kill)

        vmm_dir = short_tmpdir("mvv-")  # VM sockets need short paths
        stack.callback(shutil.rmtree, vmm_dir, True)
        vmm = DaemonProcess("mvirt.vmm", vmm_dir / "data", None, *image_root_args(), *vmm_args())
        stack.callback(_stop_vmm, vmm)
        vmm.start()

        pool = f"mvt{os.getpid()}c{next(_pools)}"
        image = folder / "pool.img"
        with open(image, "wb") as file:
            file.truncate(POOL_FILE_SIZE)
        created = zpool("create", "-m", "none", pool, str(image))
        assert created.returncode == 0, created.stderr
        stack.callback(destroy_pool, pool)
        zfs = ZfsDaemon(
            "mvirt.zfs",
            folder / "zfs-data",
            None,
            "--pool",
            pool,
            "--log-endpoint",
            log.endpoint,
            "--import-root",
            str(folder),
            "--shutdown-grace",
            "2",
        )
        zfs.pool = pool
        stack.callback(
            lambda: zfs.proc is not None and zfs.proc.poll() is None and zfs.terminate(60)
        )
        zfs.start()

        netns = Netns()
        stack.callback(netns.delete)
        net = NetDaemon(netns, folder / "net-data", log_endpoint=log.endpoint)
        stack.callback(net.close)
        net.start()

        node = RealNode(vmm.endpoint, log, zfs, net)
        stack.callback(node.close)
        node.env = {
            "MVIRT_SERVER": vmm.endpoint,
            "MVIRT_LOG_SERVER": log.endpoint,
            "MVIRT_ZFS_SERVER": zfs.endpoint,
            "MVIRT_NET_SERVER": net.relay.endpoint,
            "XDG_CONFIG_HOME": str(folder / "config"),
        }
        add_template(node.zfs, folder)
        add_network(node.net)
        yield node


def _stop_vmm(vmm: DaemonProcess) -> None:
    """Kills mvirt-vmm and every hypervisor its store still lists."""
    if vmm.proc is not None and vmm.proc.poll() is None:
        vmm.kill()
    for pid in hypervisor_pids(vmm.data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def real_node(zfs_service: None, tmp_path: Path) -> Iterator[RealNode]:
    """The four daemons of a node, with the template ``debian12`` and the network ``prod``."""
    with running_node(tmp_path) as node:
        yield node
