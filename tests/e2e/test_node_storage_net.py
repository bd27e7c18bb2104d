"""The node with a pool disk: booted under QEMU (TCG) with a second virtio disk (a sparse file
the test makes), `mvirt.zfs.disk=/dev/vdb` and `mvirt.api=tls` on its command line, mvirt-zfs
and mvirt-net are driven from the host over mutual TLS. The first boot creates the pool on the
empty disk; a second boot from the same disk imports it and finds the volume made in the first.

(A boot without the option, where mvirt-zfs is not started, is checked by test_node.py.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from mvirt.daemon import tls
from mvirt.proto import net_pb2, net_pb2_grpc, zfs_pb2, zfs_pb2_grpc
from mvirt_build import api_boot, config
from mvirt_build.stages.uki import sbat_line

from .conftest import ROOT
from .test_node import BOOT_TIMEOUT, NodeBuild, node_build  # noqa: F401 - the shared build
from .vm import Machine

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
VMM, ZFS, NET = 50051, 50053, 50054
DISK_SIZE = 2 << 30
POOL_WORDS = (api_boot.API_WORD, "mvirt.zfs.disk=/dev/vdb")
T = TypeVar("T")


class PoolNode:
    """One boot of the node with the pool disk attached."""

    def __init__(self, uki: Path, disk: Path, workdir: Path, identity: tls.ClientIdentity):
        workdir.mkdir()
        self.vm = Machine(ROOT, uki, workdir, guest_ports=(ZFS, NET, VMM), disks=(disk,))
        self.identity = identity
        self.vm.wait_for("pideisn: ready (uptime", BOOT_TIMEOUT)
        fingerprint = api_boot.fingerprint_of(self.vm.lines)
        assert fingerprint is not None, self.vm.console()[-4000:]
        self.fingerprint = fingerprint

    def call(self, port: int, call: Callable[[grpc.Channel], T], timeout: float = 120) -> T:
        """The first successful answer of `call(channel)` (the forwarded port may take a
        moment after the ready line)."""
        deadline = time.monotonic() + timeout
        while True:
            self.vm.pump()
            try:
                target = f"127.0.0.1:{self.vm.ports[port]}"
                channel, _ = tls.connect_pinned(target, self.identity, self.fingerprint)
                with channel:
                    return call(channel)
            except (OSError, tls.TlsError, grpc.RpcError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)  # polling the node until it answers (bounded by the deadline)

    def power_off(self) -> str:
        """ACPI power button; the console of the shutdown once the machine is off."""
        mark = len(self.vm.lines)
        self.vm.qmp("system_powerdown")
        status = self.vm.wait_exit(180)
        console = self.vm.console(mark)
        assert status == 0, console
        return console


def test_pool_volume_network_and_nic_and_the_volume_survives_a_reboot(
    node_build: NodeBuild,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
):
    cfg = config.load(ROOT)
    image = node_build.uki.read_bytes()
    for word in POOL_WORDS:
        image = api_boot.with_cmdline_word(image, cfg.uki.stub.read_bytes(), sbat_line(), word)
    uki = tmp_path / "node-pool.efi"
    uki.write_bytes(image)
    disk = tmp_path / "pool.img"
    with open(disk, "wb") as sparse:
        sparse.truncate(DISK_SIZE)
    identity = tls.load_client_identity(node_build.authority.issue_client(tmp_path / "client"))

    first = PoolNode(uki, disk, tmp_path / "first", identity)
    try:
        console = first.vm.console()
        assert "node pool: pool mvirt on /dev/vdb created" in console
        assert console.index("zfs-pool: ready") < console.index("mvirt-zfs: started")
        assert console.index("mvirt-net: ready") < console.index("mvirt-vmm: started")
        stats = first.call(
            ZFS,
            lambda ch: zfs_pb2_grpc.ZfsServiceStub(ch).GetPoolStats(
                zfs_pb2.GetPoolStatsRequest(), timeout=60
            ),
        )
        assert stats.name == "mvirt" and stats.total_bytes > 0
        volume = first.call(
            ZFS,
            lambda ch: zfs_pb2_grpc.ZfsServiceStub(ch).CreateVolume(
                zfs_pb2.CreateVolumeRequest(name="data", size_bytes=64 << 20), timeout=120
            ),
        )
        listed = first.call(
            ZFS,
            lambda ch: zfs_pb2_grpc.ZfsServiceStub(ch).ListVolumes(
                zfs_pb2.ListVolumesRequest(), timeout=60
            ),
        ).volumes
        assert [(v.id, v.name) for v in listed] == [(volume.id, "data")]
        assert listed[0].path.startswith("/") and listed[0].volsize_bytes == 64 << 20

        network = first.call(
            NET,
            lambda ch: net_pb2_grpc.NetServiceStub(ch).CreateNetwork(
                net_pb2.CreateNetworkRequest(
                    name="e2e", ipv4_subnet="10.231.0.0/24", ipv6_prefix="fd00:231::/64"
                ),
                timeout=120,
            ),
        )
        nic = first.call(
            NET,
            lambda ch: net_pb2_grpc.NetServiceStub(ch).CreateNic(
                net_pb2.CreateNicRequest(network_id=network.id, name="e2e-nic"), timeout=120
            ),
        )
        assert nic.ipv4_address == "10.231.0.1" and nic.tap_name
        nics = first.call(
            NET,
            lambda ch: net_pb2_grpc.NetServiceStub(ch).ListNics(
                net_pb2.ListNicsRequest(network_id=network.id), timeout=60
            ),
        ).nics
        assert [(n.id, n.tap_name) for n in nics] == [(nic.id, nic.tap_name)]
        shutdown = first.power_off()
        assert shutdown.index("mvirt-zfs: stopped") < shutdown.index("zfs-pool: stopped")
        assert "zfs-pool: stopped (exit 0)" in shutdown
    finally:
        print(first.vm.console()[-30000:])  # shown when the test fails
        first.vm.close()

    second = PoolNode(uki, disk, tmp_path / "second", identity)
    try:
        assert "node pool: pool mvirt on /dev/vdb imported" in second.vm.console()
        again = second.call(
            ZFS,
            lambda ch: zfs_pb2_grpc.ZfsServiceStub(ch).ListVolumes(
                zfs_pb2.ListVolumesRequest(), timeout=60
            ),
        ).volumes
        assert [(v.id, v.name, v.path) for v in again] == [(volume.id, "data", listed[0].path)]
        second.power_off()
    finally:
        print(second.vm.console()[-30000:])  # shown when the test fails
        second.vm.close()
