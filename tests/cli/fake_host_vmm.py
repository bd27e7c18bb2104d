"""fake_host_vmm: an in-test VmService with a fixed host, for the System view's snapshot. The
real mvirt-vmm reports the machine it runs on (CPUs, disks, NICs), which differs from one
machine to the next; every other view's snapshot is taken on real daemons."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

from mvirt.proto import vmm_pb2, vmm_pb2_grpc

T0 = 1_790_000_000  # 2026-09-21, fixed so screenshots are comparable


class FakeHostVmm(vmm_pb2_grpc.VmServiceServicer):
    """A small fixed host (and two VMs)."""

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


@contextlib.contextmanager
def fake_host_vmm() -> Iterator[str]:
    """A fake_host_vmm server; its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    vmm_pb2_grpc.add_VmServiceServicer_to_server(FakeHostVmm(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)
