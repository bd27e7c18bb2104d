"""In-test gRPC servers with fixed data, for the TUI's snapshot tests: mvirt-zfs needs kernel
ZFS and mvirt-net its own branch of work, neither of which exists here, and fixed data (ids,
times) is what makes a screenshot comparable. Each answers only what the TUI asks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from mvirt.proto import (
    log_pb2,
    log_pb2_grpc,
    net_pb2,
    net_pb2_grpc,
    vmm_pb2,
    vmm_pb2_grpc,
    zfs_pb2,
    zfs_pb2_grpc,
)

T0 = 1_790_000_000  # 2026-09-21, fixed so screenshots are comparable


class FakeVmm(vmm_pb2_grpc.VmServiceServicer):
    """Two VMs and a small host."""

    def ListVms(self, request: Any, context: Any) -> vmm_pb2.ListVmsResponse:  # noqa: N802
        def vm(n: int, name: str, state: int, memory: int) -> vmm_pb2.Vm:
            return vmm_pb2.Vm(
                id=f"00000000-0000-4000-8000-00000000000{n}",
                name=name,
                state=state,  # type: ignore[arg-type]
                config=vmm_pb2.VmConfig(vcpus=n, memory_mb=memory, kernel="/boot/vmlinuz"),
                created_at=T0,
            )

        return vmm_pb2.ListVmsResponse(
            vms=[vm(1, "web", vmm_pb2.VM_STATE_RUNNING, 1024), vm(2, "db", 1, 2048)]
        )

    def WatchVms(self, request: Any, context: Any) -> Iterator[vmm_pb2.VmEvent]:  # noqa: N802
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()
        return iter(())

    def GetSystemInfo(self, request: Any, context: Any) -> vmm_pb2.SystemInfo:  # noqa: N802
        return vmm_pb2.SystemInfo(
            total_cpus=4,
            total_memory_mb=8192,
            allocated_cpus=3,
            allocated_memory_mb=3072,
            host=vmm_pb2.HostInfo(hostname="node1", kernel_version="6.1.0"),
            cpu=vmm_pb2.CpuInfo(
                model="Test CPU", vendor="GenuineIntel", physical_cores=2, sockets=1
            ),
            memory=vmm_pb2.MemoryInfo(available_bytes=4096 << 20),
            load_1=0.5,
            load_5=0.25,
            load_15=0.125,
        )


class FakeLog(log_pb2_grpc.LogServiceServicer):
    """Two entries, then a follow stream that stays open."""

    def GetVersion(self, request: Any, context: Any) -> log_pb2.VersionInfo:  # noqa: N802
        return log_pb2.VersionInfo(version="0.1.0")

    def Query(self, request: Any, context: Any) -> Iterator[log_pb2.LogEntry]:  # noqa: N802
        yield log_pb2.LogEntry(
            id="1",
            timestamp_ns=T0 * 10**9,
            level=log_pb2.INFO,
            component="vmm",
            message="created VM web",
            related_object_ids=["00000000-0000-4000-8000-000000000001"],
        )
        yield log_pb2.LogEntry(
            id="2",
            timestamp_ns=(T0 + 61) * 10**9,
            level=log_pb2.WARN,
            component="zfs",
            message="pool tank is 85% full",
        )
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()


class FakeZfs(zfs_pb2_grpc.ZfsServiceServicer):
    """One template, one cloned volume with a snapshot, one import under way."""

    def ListTemplates(self, request: Any, context: Any) -> Any:  # noqa: N802
        template = zfs_pb2.Template(
            id="t1",
            name="debian12",
            size_bytes=2 << 30,
            created_at="2026-09-21T10:00:00Z",
            clone_count=1,
        )
        return zfs_pb2.ListTemplatesResponse(templates=[template])

    def ListVolumes(self, request: Any, context: Any) -> Any:  # noqa: N802
        volume = zfs_pb2.Volume(
            id="v1",
            name="web-root",
            path="/dev/zvol/tank/volumes/v1",
            volsize_bytes=20 << 30,
            used_bytes=1 << 30,
            snapshots=[zfs_pb2.Snapshot(id="s1", name="before-upgrade")],
        )
        return zfs_pb2.ListVolumesResponse(volumes=[volume])

    def ListImportJobs(self, request: Any, context: Any) -> Any:  # noqa: N802
        job = zfs_pb2.ImportJob(
            id="j1",
            template_name="alpine",
            source="https://example.org/alpine.raw",
            state=zfs_pb2.IMPORT_JOB_STATE_DOWNLOADING,
            bytes_written=64 << 20,
            total_bytes=256 << 20,
        )
        return zfs_pb2.ListImportJobsResponse(jobs=[job])


class FakeNet(net_pb2_grpc.NetServiceServicer):
    """One network with one NIC."""

    def ListNetworks(self, request: Any, context: Any) -> Any:  # noqa: N802
        network = net_pb2.Network(
            id="n1",
            name="prod",
            ipv4_enabled=True,
            ipv4_subnet="10.10.0.0/24",
            nic_count=1,
            is_public=True,
        )
        return net_pb2.ListNetworksResponse(networks=[network])

    def ListNics(self, request: Any, context: Any) -> Any:  # noqa: N802
        nic = net_pb2.Nic(
            id="c1",
            name="web-eth0",
            network_id="n1",
            mac_address="52:54:00:12:34:56",
            ipv4_address="10.10.0.2",
            state=net_pb2.NIC_STATE_ACTIVE,
        )
        return net_pb2.ListNicsResponse(nics=[nic])


def fake_daemons() -> tuple[grpc.Server, dict[str, str]]:
    """One server holding all four fakes; the address of each daemon (all the same)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    vmm_pb2_grpc.add_VmServiceServicer_to_server(FakeVmm(), server)
    log_pb2_grpc.add_LogServiceServicer_to_server(FakeLog(), server)
    zfs_pb2_grpc.add_ZfsServiceServicer_to_server(FakeZfs(), server)
    net_pb2_grpc.add_NetServiceServicer_to_server(FakeNet(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    return server, {kind: address for kind in ("vmm", "log", "zfs", "net")}
