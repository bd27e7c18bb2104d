#!/usr/bin/env python3
"""mvirt-vmm benchmark: API latency without guest boot, lifecycle cycles per second, and
daemon memory per managed VM.

Guests never boot an OS here: a QEMU VM whose only disk is empty sits in the UEFI firmware,
so StartVm measures spawning QEMU and connecting QMP, not a kernel. StopVm needs a guest that
answers the power button; no such guest starts in milliseconds, so Stop is measured on the
cloud-hypervisor backend with the test suite's fake VMM (it exits on the power button), which
isolates the daemon's share of a graceful stop. Run: ``.venv/bin/python benchmarks/vmm_bench.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from mvirt.proto import vmm_pb2 as pb
from mvirt.proto import vmm_pb2_grpc

FAKE_CH = Path(__file__).resolve().parents[1] / "tests/vmm/fake_cloud_hypervisor.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, root: Path, *args: str) -> None:
        self.port = free_port()
        self.data_dir = root / "data"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mvirt.vmm", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.data_dir), "--log-endpoint", "", "--log-level", "warning",
             "--image-root", str(root.parent),  # the disks live next to the daemons' folders
             *args],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = vmm_pb2_grpc.VmServiceStub(self.channel)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def close(self) -> None:
        for vm in self.stub.ListVms(pb.ListVmsRequest()).vms:
            if vm.state != pb.VM_STATE_STOPPED:
                self.stub.KillVm(pb.KillVmRequest(id=vm.id))
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


@contextlib.contextmanager
def timing(samples: list[float]) -> Iterator[None]:
    """Append the block's duration in milliseconds to ``samples``."""
    begin = time.perf_counter()
    yield
    samples.append((time.perf_counter() - begin) * 1000)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def firmware_config(disk: Path) -> pb.VmConfig:
    return pb.VmConfig(
        vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_DISK, disks=[pb.DiskConfig(path=str(disk))]
    )


def latency_qemu(root: Path, rounds: int) -> dict[str, list[float]]:
    daemon = Daemon(root / "qemu", "--accel", "tcg")
    disk = root / "empty.img"
    disk.write_bytes(b"\0" * 1024 * 1024)
    result: dict[str, list[float]] = {"Create": [], "Start": [], "Kill": [], "Delete": []}
    try:
        for _ in range(rounds):
            with timing(result["Create"]):
                vm = daemon.stub.CreateVm(pb.CreateVmRequest(config=firmware_config(disk)))
            with timing(result["Start"]):
                daemon.stub.StartVm(pb.StartVmRequest(id=vm.id))
            with timing(result["Kill"]):
                daemon.stub.KillVm(pb.KillVmRequest(id=vm.id))
            with timing(result["Delete"]):
                daemon.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
    finally:
        daemon.close()
    return result


def latency_fake_ch(root: Path, rounds: int) -> dict[str, list[float]]:
    daemon = Daemon(root / "ch", "--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    kernel = root / "vmlinuz"
    kernel.write_bytes(b"kernel")
    result: dict[str, list[float]] = {"Create": [], "Start": [], "Stop": [], "Delete": []}
    config = pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel))
    try:
        for _ in range(rounds):
            with timing(result["Create"]):
                vm = daemon.stub.CreateVm(pb.CreateVmRequest(config=config))
            with timing(result["Start"]):
                daemon.stub.StartVm(pb.StartVmRequest(id=vm.id))
            with timing(result["Stop"]):
                daemon.stub.StopVm(pb.StopVmRequest(id=vm.id, timeout_seconds=30))
            with timing(result["Delete"]):
                daemon.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
    finally:
        daemon.close()
    return result


def cycles(root: Path, seconds: float, clients: int) -> float:
    daemon = Daemon(root / f"cycles{clients}", "--accel", "tcg")
    disks = [root / f"empty{i}.img" for i in range(clients)]
    for disk in disks:
        disk.write_bytes(b"\0" * 1024 * 1024)
    done = [0] * clients
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        stub = daemon.stub
        while time.monotonic() < stop_at:
            vm = stub.CreateVm(pb.CreateVmRequest(config=firmware_config(disks[index])))
            stub.StartVm(pb.StartVmRequest(id=vm.id))
            stub.KillVm(pb.KillVmRequest(id=vm.id))
            stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
            done[index] += 1

    begin = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begin
    daemon.close()
    return sum(done) / elapsed


def memory(root: Path, stopped: int, running: int) -> tuple[int, float, float]:
    daemon = Daemon(root / "mem", "--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    kernel = root / "vmlinuz"
    config = pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel))
    try:
        time.sleep(0.5)
        base = daemon.rss_kib()
        for _ in range(stopped):
            daemon.stub.CreateVm(pb.CreateVmRequest(config=config))
        after_stopped = daemon.rss_kib()
        for vm in daemon.stub.ListVms(pb.ListVmsRequest()).vms[:running]:
            daemon.stub.StartVm(pb.StartVmRequest(id=vm.id))
        time.sleep(0.5)
        after_running = daemon.rss_kib()
    finally:
        daemon.close()
    per_stopped = (after_stopped - base) / stopped
    per_running = (after_running - after_stopped) / running
    return base, per_stopped, per_running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="lifecycles per latency run")
    parser.add_argument("--seconds", type=float, default=15, help="length of each cycle run")
    parser.add_argument("--stopped", type=int, default=500, help="stopped VMs for memory")
    parser.add_argument("--running", type=int, default=40, help="running VMs for memory")
    args = parser.parse_args()
    if shutil.which("qemu-system-x86_64") is None:
        sys.exit("qemu-system-x86_64 is needed (apt-get install qemu-system-x86 ovmf)")
    cores = os.cpu_count() or 1
    root = Path(tempfile.mkdtemp(prefix="mvb-", dir="/tmp"))
    try:
        rows: list[tuple[str, str, float, float]] = []
        for backend, run in (("qemu/tcg", latency_qemu), ("fake-ch", latency_fake_ch)):
            for op, samples in run(root, args.rounds).items():
                rows.append((backend, op, statistics.median(samples), pct(samples, 0.99)))
        one = cycles(root, args.seconds, 1)
        many = cycles(root, args.seconds, cores)
        base, per_stopped, per_running = memory(root, args.stopped, args.running)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"host: {cores} cores; {args.rounds} lifecycles per backend")
    print(f"{'backend':10} {'call':8} {'median ms':>10} {'p99 ms':>10}")
    for backend, op, median, p99 in rows:
        print(f"{backend:10} {op:8} {median:10.1f} {p99:10.1f}")
    print()
    print("create->start->kill->delete cycles (QEMU, TCG):")
    print(f"  1 client:  {one:6.2f} cycles/s = {one / cores:5.2f} per core")
    print(f"  {cores} clients: {many:6.2f} cycles/s = {many / cores:5.2f} per core (target >= 5)")
    print()
    print(f"daemon RSS at start: {base / 1024:.1f} MiB")
    print(f"  per stopped VM ({args.stopped}): {per_stopped:7.1f} KiB")
    print(f"  per running VM ({args.running}, console + monitor): {per_running:7.1f} KiB "
          "(target <= 2048)")  # fmt: skip


if __name__ == "__main__":
    main()
