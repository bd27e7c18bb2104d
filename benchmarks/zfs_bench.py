#!/usr/bin/env python3
"""mvirt-zfs benchmark on a zfs-fuse (or kernel ZFS) pool made from a file for the run.

* Import throughput: ImportTemplate of a local qcow2 (request to COMPLETED) next to
  ``qemu-img convert`` of the same qcow2 to a raw file on a dataset of the same pool; the
  ratio is import throughput / qemu-img throughput (goal >= 0.9).
* CloneFromTemplate and CreateSnapshot latency (median, p99).
* CreateVolume until its path is open and writable (median, p99).

Run as root: ``.venv/bin/python benchmarks/zfs_bench.py [--image-mib 1024] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc

from mvirt.proto import zfs_pb2 as pb
from mvirt.proto import zfs_pb2_grpc

MIB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zfs_running() -> bool:
    return subprocess.run(["zpool", "list"], capture_output=True, check=False).returncode == 0


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def bench_pool(folder: Path) -> Iterator[str]:
    if not zfs_running():
        subprocess.run(["zfs-fuse", "--no-kstat-mount"], check=True)
        wait(zfs_running, 30, "zfs-fuse")
    name = f"mvbench{os.getpid()}"
    image = folder / "pool.img"
    with open(image, "wb") as file:
        file.truncate(4 << 30)
    subprocess.run(["zpool", "create", "-m", "none", name, str(image)], check=True)
    try:
        yield name
    finally:
        deadline = time.monotonic() + 120
        while subprocess.run(
            ["zpool", "destroy", name], capture_output=True, check=False
        ).returncode:
            if time.monotonic() > deadline:
                print(f"could not destroy pool {name}", file=sys.stderr)
                break
            time.sleep(0.2)


@contextlib.contextmanager
def daemon(pool: str, folder: Path) -> Iterator[zfs_pb2_grpc.ZfsServiceStub]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvirt.zfs", "--pool", pool, "--data-dir", str(folder / "data"),
         "--listen", f"127.0.0.1:{port}", "--log-endpoint", "", "--import-root", str(folder)],
        stderr=open(folder / "daemon.log", "wb"),  # noqa: SIM115
    )  # fmt: skip
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        yield zfs_pb2_grpc.ZfsServiceStub(channel)
    finally:
        channel.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def make_qcow2(folder: Path, size: int) -> Path:
    """A qcow2 of ``size`` bytes, half of its 1 MiB blocks random data, half holes."""
    raw = folder / "source.raw"
    with open(raw, "wb") as file:
        file.truncate(size)
        for offset in range(0, size, 2 * MIB):
            file.seek(offset)
            file.write(os.urandom(MIB))
    qcow2 = folder / "source.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True)  # fmt: skip
    raw.unlink()
    return qcow2


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    size = args.image_mib * MIB
    with tempfile.TemporaryDirectory(prefix="zfs-bench-") as tmp:
        folder = Path(tmp)
        qcow2 = make_qcow2(folder, size)
        with bench_pool(folder) as pool, daemon(pool, folder) as stub:
            # Baseline: qemu-img into a dataset of the same pool.
            mount = folder / "baseline"
            subprocess.run(["zfs", "create", "-o", f"mountpoint={mount}", f"{pool}/baseline"],
                           check=True)  # fmt: skip
            baseline = timed(lambda: subprocess.run(
                ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2),
                 str(mount / "disk.raw")], check=True))  # fmt: skip

            def run_import() -> None:
                job = stub.ImportTemplate(pb.ImportTemplateRequest(name="t", source=str(qcow2)))
                while job.state < pb.IMPORT_JOB_STATE_COMPLETED:
                    time.sleep(0.01)
                    job = stub.GetImportJob(pb.GetImportJobRequest(id=job.id))
                if job.state != pb.IMPORT_JOB_STATE_COMPLETED:
                    sys.exit(f"import failed: {job.error}")

            imported = timed(run_import)

            clones = [
                timed(lambda i=i: stub.CloneFromTemplate(
                    pb.CloneFromTemplateRequest(template_name="t", new_volume_name=f"c{i}")))
                for i in range(args.rounds)
            ]  # fmt: skip
            snapshots = [
                timed(lambda i=i: stub.CreateSnapshot(
                    pb.CreateSnapshotRequest(volume_name="c0", snapshot_name=f"s{i}")))
                for i in range(args.rounds)
            ]  # fmt: skip

            def create_usable(i: int) -> None:
                volume = stub.CreateVolume(pb.CreateVolumeRequest(name=f"v{i}", size_bytes=size))
                fd = os.open(volume.path, os.O_WRONLY)
                try:
                    os.pwrite(fd, b"x", size - 1)
                finally:
                    os.close(fd)

            creates = [timed(lambda i=i: create_usable(i)) for i in range(args.rounds)]

    mib = size / MIB
    rows = [
        ("qemu-img convert qcow2 -> raw", f"{mib / baseline:.1f} MiB/s", f"{baseline:.2f} s"),
        ("ImportTemplate (local qcow2)", f"{mib / imported:.1f} MiB/s", f"{imported:.2f} s"),
        ("import / qemu-img throughput", f"{baseline / imported:.2f}x", "goal >= 0.9x"),
    ]
    for label, samples in (
        ("CloneFromTemplate", clones),
        ("CreateSnapshot", snapshots),
        ("CreateVolume -> usable path", creates),
    ):
        median, p99 = summary(samples)
        rows.append((label, f"median {median:.0f} ms", f"p99 {p99:.0f} ms"))
    print(f"image {mib:.0f} MiB (half data, half holes), {args.rounds} rounds per latency")
    width = max(len(r[0]) for r in rows)
    for label, first, second in rows:
        print(f"{label:<{width}}  {first:>16}  {second:>14}")


if __name__ == "__main__":
    main()
