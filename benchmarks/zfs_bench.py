#!/usr/bin/env python3
"""mvirt-zfs benchmark on a zfs-fuse (or kernel ZFS) pool made from a file for the run.

* Import throughput: ImportTemplate of a local qcow2 (request to COMPLETED) next to
  ``qemu-img convert`` of the same qcow2 to a raw file on a dataset of the same pool; the
  ratio is import throughput / qemu-img throughput (goal >= 0.9). The qemu-img target is a
  dataset laid out like a template (``recordsize`` = the default volblocksize, 16 KiB, which
  costs zfs-fuse more than its default 128 KiB); a second baseline with the pool's defaults
  shows that difference. ``--runs`` rounds of the three, their order rotating (the machine is
  shared); before each step the pool's dirty data is written out, so no step pays for the
  one before it (the import still pays for its own: its ``@img`` snapshot waits for it). The
  median ratio is the result.
  Where the import's time goes comes from the daemon's own "import job ended" log lines
  (phases on one clock, see ``mvirt.zfs.phase_times``); "client wait" is what polling
  GetImportJob and the RPCs add on top.
* CloneFromTemplate and CreateSnapshot latency (median, p99).
* CreateVolume until its path is open and writable (median, p99).

Run as root:
``.venv/bin/python benchmarks/zfs_bench.py [--image-mib 1024] [--runs 5] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from mvirt.zfs.validation import DEFAULT_BLOCKSIZE

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
def bench_pool(folder: Path, size: int) -> Iterator[str]:
    """A pool on a sparse file of ``size`` bytes in ``folder``."""
    if not zfs_running():
        subprocess.run(["zfs-fuse", "--no-kstat-mount"], check=True)
        wait(zfs_running, 30, "zfs-fuse")
    name = f"mvbench{os.getpid()}"
    image = folder / "pool.img"
    with open(image, "wb") as file:
        file.truncate(size)
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
    """mvirt-zfs on ``pool``; its JSON log goes to ``folder/daemon.log``."""
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


# A template's dataset as mvirt-zfs makes it on a file-backed pool (zfs-fuse).
TEMPLATE_LAYOUT = ["-o", f"recordsize={DEFAULT_BLOCKSIZE}"]


def baseline_target(pool: str, name: str, folder: Path, options: list[str]) -> Path:
    """A dataset of ``pool`` mounted under ``folder``; returns the image path inside it."""
    mount = folder / name
    subprocess.run(["zfs", "create", "-o", f"mountpoint={mount}", *options, f"{pool}/{name}"],
                   check=True)  # fmt: skip
    return mount / "disk.raw"


def settle(pool: str) -> float:
    """Writes out what earlier steps left dirty in the pool (a snapshot waits for the whole
    pool's transaction group), so no measured step pays for the one before it. Returns how
    long the snapshot took: the write-out of what the step before left."""
    snapshot = f"{pool}/baseline@settle"
    took = timed(lambda: subprocess.run(["zfs", "snapshot", snapshot], check=True))
    subprocess.run(["zfs", "destroy", snapshot], check=True)
    return took


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


TIGHT_POLL = 0.005
SLOW_POLL = 0.25


def poll_delay(job: pb.ImportJob, elapsed: float) -> float:
    """When to ask for the job again. GetImportJob has no watch, and polling every few
    milliseconds for seconds would take CPU from the import on a 2-core machine: while the
    job's progress says it runs for a while yet, ask at half its remaining time; near the
    end (and while progress is unknown) ask every 5 ms. The lag left is reported."""
    if job.total_bytes and job.bytes_written:
        remaining = elapsed * (job.total_bytes - job.bytes_written) / job.bytes_written
        return min(max(remaining / 2, TIGHT_POLL), SLOW_POLL)
    return TIGHT_POLL


def import_template(stub: zfs_pb2_grpc.ZfsServiceStub, name: str, source: Path) -> str:
    """ImportTemplate until COMPLETED; returns the job id."""
    start = time.perf_counter()
    job = stub.ImportTemplate(pb.ImportTemplateRequest(name=name, source=str(source)))
    while job.state < pb.IMPORT_JOB_STATE_COMPLETED:
        time.sleep(poll_delay(job, time.perf_counter() - start))
        job = stub.GetImportJob(pb.GetImportJobRequest(id=job.id))
    if job.state != pb.IMPORT_JOB_STATE_COMPLETED:
        sys.exit(f"import failed: {job.error}")
    return job.id


def job_phases(log: Path) -> dict[str, dict[str, float]]:
    """{job id: {phase: ms, ..., "total": ms}} from the daemon's "import job ended" lines."""
    phases: dict[str, dict[str, float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("msg") == "import job ended":
                phases[record["job"]] = {**record["phases_ms"], "total": record["total_ms"]}
    return phases


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        first, *rest = row
        cells = [
            f"{first:<{widths[0]}}",
            *(f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True)),
        ]
        print("  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5, help="rounds of import and qemu-img")
    parser.add_argument("--rounds", type=int, default=30, help="samples per latency")
    args = parser.parse_args()
    size = args.image_mib * MIB
    baselines: list[float] = []
    defaults: list[float] = []
    written: list[float] = []  # qemu-img (template layout) until its data is on disk
    imports: list[float] = []
    job_ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zfs-bench-") as tmp:
        folder = Path(tmp)
        qcow2 = make_qcow2(folder, size)
        # Every template stays (deleting one right after its import can meet zfs-fuse's
        # "dataset is busy"), and the baselines' files are removed: room for all of that.
        pool_size = max(4 << 30, (args.runs + 4) * size)
        with bench_pool(folder, pool_size) as pool, daemon(pool, folder) as stub:
            # Baselines: qemu-img into datasets of the same pool, one laid out like a template
            # (the image's blocks are the clones' blocks), one with the pool's defaults.
            targets = {
                "qemu-img": baseline_target(pool, "baseline", folder, TEMPLATE_LAYOUT),
                "qemu-img default": baseline_target(pool, "baseline-default", folder, []),
            }

            def run_baseline(target: Path) -> None:
                # A dataset that is not mounted (any more) would let qemu-img write to the
                # directory below it instead: a fast, false baseline.
                if not os.path.ismount(target.parent):
                    sys.exit(f"{target.parent} is not mounted; the baseline would miss ZFS")
                subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2),
                                str(target)], check=True)  # fmt: skip

            for i in range(args.runs):
                steps = ["qemu-img", "qemu-img default", "import"]
                for what in steps[i % 3 :] + steps[: i % 3]:
                    settle(pool)
                    if what == "import":
                        start = time.perf_counter()
                        job_ids.append(import_template(stub, f"t{i}", qcow2))
                        imports.append(time.perf_counter() - start)
                    else:
                        target = targets[what]
                        times = baselines if what == "qemu-img" else defaults
                        times.append(timed(lambda target=target: run_baseline(target)))
                        if what == "qemu-img":
                            written.append(baselines[-1] + settle(pool))
                        target.unlink()
            template = f"t{args.runs - 1}"

            clones = [
                timed(lambda i=i: stub.CloneFromTemplate(
                    pb.CloneFromTemplateRequest(template_name=template, new_volume_name=f"c{i}")))
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
        phases = job_phases(folder / "daemon.log")

    mib = size / MIB
    print(f"image {mib:.0f} MiB (half data, half holes), {args.runs} rounds")
    print(f"qemu-img: into a dataset laid out like a template ({' '.join(TEMPLATE_LAYOUT)});")
    print("qemu-img default: into a dataset with the pool's defaults (recordsize 128K)")
    print("qemu-img + write-out: the first, until its data is on disk (as the import's")
    print("@img snapshot waits for it); ratios: qemu-img time / import time")
    columns = (baselines, written, defaults, imports)
    runs: list[tuple[str, ...]] = [(
        "run", "qemu-img", "+ write-out", "qemu-img default", "import", "ratio",
        "to + write-out", "to default",
    )]  # fmt: skip
    ratios = [[b / t for b, t in zip(base, imports, strict=True)] for base in columns[:3]]
    for i, row in enumerate(zip(*columns, strict=True)):
        runs.append((
            str(i + 1), *(f"{t:.2f} s" for t in row), *(f"{r[i]:.2f}x" for r in ratios)
        ))  # fmt: skip
    runs.append((
        "median",
        *(f"{mib / statistics.median(t):.0f} MiB/s" for t in columns),
        *(f"{statistics.median(r):.2f}x" for r in ratios),
    ))  # fmt: skip
    print_table(runs)

    print("\nwhere the import's time goes (ms, median over runs; daemon's own clock)")
    known = [phases[j] for j in job_ids if j in phases]
    names = list(dict.fromkeys(name for p in known for name in p if name != "total"))
    rows: list[tuple[str, ...]] = [("phase", "median", "min", "max")]
    for name in [*names, "total"]:
        values = [p.get(name, 0.0) for p in known]
        rows.append((name, f"{statistics.median(values):.1f}", f"{min(values):.1f}",
                     f"{max(values):.1f}"))  # fmt: skip
    waits = [
        imp * 1000 - phases[j]["total"]
        for imp, j in zip(imports, job_ids, strict=True)
        if j in phases
    ]
    rows.append(("client wait (RPCs, polling)", f"{statistics.median(waits):.1f}",
                 f"{min(waits):.1f}", f"{max(waits):.1f}"))  # fmt: skip
    if known:
        print_table(rows)

    print(f"\nlatencies, {args.rounds} rounds each")
    latencies: list[tuple[str, ...]] = [("operation", "median", "p99")]
    for label, samples in (
        ("CloneFromTemplate", clones),
        ("CreateSnapshot", snapshots),
        ("CreateVolume -> usable path", creates),
    ):
        median, p99 = summary(samples)
        latencies.append((label, f"{median:.0f} ms", f"{p99:.0f} ms"))
    print_table(latencies)


if __name__ == "__main__":
    main()
