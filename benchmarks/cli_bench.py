#!/usr/bin/env python3
"""The client's speed: what importing the CLI costs, `mvirt list` wall time with 1,000 VMs
defined (goal: at most 300 ms, like a compiled client), `mvirt --help`, and the TUI from start
to its first full screen (the VM table filled with all 1,000 rows). The interpreter's own
start is measured too: on a loaded machine it moves every row, and the minimum is the figure
least disturbed by other load. Each row also gives the CPU time the client process used (user
+ system), which other load hardly changes: wall time minus CPU time is waiting (for the
daemon, or for a core).

The mvirt package is compiled to bytecode first, as an installed package is: a checkout run
with PYTHONDONTWRITEBYTECODE=1 (as these machines set it) would otherwise compile the CLI's
modules from source on every run.

Runs a real mvirt-vmm on loopback (on the tests' fake cloud-hypervisor, so no guest boots).
Run: ``.venv/bin/python benchmarks/cli_bench.py [--vms 1000] [--runs 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import grpc

import mvirt
from mvirt.proto import vmm_pb2, vmm_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
FAKE_CH = REPO / "tests" / "vmm" / "fake_cloud_hypervisor.py"
MVIRT = [sys.executable, "-m", "mvirt.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_vmm(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """mvirt-vmm on the fake cloud-hypervisor; VMs may boot files from data_dir's parent."""
    endpoint = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvirt.vmm", "--listen", endpoint, "--data-dir", str(data_dir),
         "--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH),
         "--image-root", str(data_dir.parent)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with grpc.insecure_channel(endpoint) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
    return proc, endpoint


def compile_package() -> None:
    """Bytecode for every module of the mvirt package, as an installed package has it."""
    for folder in mvirt.__path__:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", folder],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"{ordered[0] * 1000:7.1f} / {statistics.median(ordered) * 1000:7.1f} / {p95 * 1000:7.1f}"
    )


def wall(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run of ``args``."""
    walls, cpus = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed")
    return walls, cpus


def tui_first_screen(endpoint: str, vms: int) -> float:
    """Seconds from creating the app to the VM table holding every VM (headless)."""
    os.environ["MVIRT_SERVER"] = endpoint
    from mvirt.cli.main import cli  # noqa: PLC0415 - timed code imports nothing more
    from mvirt.cli.tui.app import MvirtApp  # noqa: PLC0415
    from mvirt.cli.tui.daemons import link_daemons  # noqa: PLC0415

    async def run() -> float:
        start = time.perf_counter()
        with click.Context(cli):
            app = MvirtApp(link_daemons())
        async with app.run_test(size=(120, 40)) as pilot:
            table = app.query_one("#vm-table")
            while table.row_count < vms:  # type: ignore[attr-defined]
                await pilot.pause(0.01)
            return time.perf_counter() - start

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    compile_package()
    tmp = Path(tempfile.mkdtemp(prefix="mvcb-", dir="/tmp"))
    proc, endpoint = start_vmm(tmp / "data")
    kernel = tmp / "kernel"  # inside the daemon's image root
    shutil.copyfile(FAKE_CH, kernel)
    try:
        with grpc.insecure_channel(endpoint) as channel:
            stub = vmm_pb2_grpc.VmServiceStub(channel)
            start = time.perf_counter()
            for n in range(args.vms):
                config = vmm_pb2.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel))
                stub.CreateVm(vmm_pb2.CreateVmRequest(name=f"vm{n:04d}", config=config))
            created = time.perf_counter() - start
            listed = len(stub.ListVms(vmm_pb2.ListVmsRequest()).vms)
        env = {**os.environ, "MVIRT_SERVER": endpoint, "XDG_CONFIG_HOME": str(tmp / "config")}
        commands = [
            ("python -c pass (interpreter start)", [sys.executable, "-c", "pass"]),
            ("import mvirt.cli.main", [sys.executable, "-c", "import mvirt.cli.main"]),
            (
                "import mvirt.cli.vm (what list needs)",
                [sys.executable, "-c", "import mvirt.cli.vm"],
            ),
            ("mvirt --help", [*MVIRT, "--help"]),
            (f"mvirt list ({listed} VMs, table)", [*MVIRT, "list"]),
            (f"mvirt list ({listed} VMs, -o json)", [*MVIRT, "list", "-o", "json"]),
        ]
        rows = [(what, wall(command, env, args.runs)) for what, command in commands]
        tui = [tui_first_screen(endpoint, listed)]
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.vms} VMs created over gRPC in {created:.1f} s; {args.runs} runs per row\n")
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs\n")
    print(f"{'what':44} {'wall min / median / p95 ms':>27}   {'CPU min / median ms':>19}")
    for what, (walls, cpus) in rows:
        cpu = sorted(cpus)
        print(
            f"{what:44} {ms(walls)}   {cpu[0] * 1000:7.1f} / {statistics.median(cpu) * 1000:7.1f}"
        )
    print(f"{'TUI start to first full screen (headless)':44} {ms(tui)}")


if __name__ == "__main__":
    main()
