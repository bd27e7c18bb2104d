"""Soak: random creates, starts, stops, kills and deletes from several clients, some of them
giving up early (short deadlines), and a ``kill -9`` of mvirt-vmm in the middle, with a real
mvirt-log. At the end every VM's state matches its hypervisor process, no hypervisor is left
without a VM, and the audit log holds every acknowledged mutation exactly once."""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import grpc
import pytest

from mvirt.proto import log_pb2, log_pb2_grpc
from mvirt.proto import vmm_pb2 as pb
from mvirt.vmm.process import cmdline_of, is_alive

from .test_api import empty_disk

PHASE_SECONDS = 30.0
WORKERS = 3
MAX_VMS = 6
# Codes a client may see for an operation that lost a race, gave up, or met the daemon down.
EXPECTED = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
}


def hypervisors_in(data_dir: Path) -> dict[int, str]:
    """pid → command line of every live process that names this data dir (hypervisors)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            argv = cmdline_of(int(proc.name))
            if argv and any(str(data_dir) in arg for arg in argv) and "mvirt.vmm" not in argv:
                found[int(proc.name)] = " ".join(argv)
    return found


class Soak:
    """The clients' shared view: the current daemon, what was acknowledged, what was tried."""

    def __init__(self, vmm, seed: int) -> None:
        self.vmm = vmm
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.running = threading.Event()  # cleared while the daemon is down
        self.running.set()
        self.done = threading.Event()
        self.acked: list[tuple[str, str]] = []  # (vm name, operation)
        self.tried: collections.Counter[tuple[str, str]] = collections.Counter()
        self.names: dict[str, str] = {}  # name → id
        self.deleted: set[str] = set()
        self.unexpected: list[str] = []
        self.counter = 0

    def pick(self) -> tuple[str, float | None]:
        with self.lock:
            alive = [n for n in self.names if n not in self.deleted]
            if len(alive) < 2 or (len(alive) < MAX_VMS and self.rng.random() < 0.15):
                return "create", None
            op = self.rng.choice(["start", "start", "stop", "kill", "kill", "delete"])
            deadline = self.rng.uniform(0.05, 0.6) if self.rng.random() < 0.35 else None
            return f"{op}:{self.rng.choice(alive)}", deadline

    def call(self, text: str, deadline: float | None, disk_dir: Path) -> None:
        stub = self.vmm.stub
        op, _, name = text.partition(":")
        if op == "create":
            with self.lock:
                self.counter += 1
                name = f"soak-{self.counter}"
            disk = empty_disk(disk_dir / f"{name}.img")
            config = pb.VmConfig(
                vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_DISK, disks=[pb.DiskConfig(path=disk)]
            )
            request: object = pb.CreateVmRequest(name=name, config=config)
            method = stub.CreateVm
        else:
            request = {
                "start": pb.StartVmRequest(id=name),
                "stop": pb.StopVmRequest(id=name, timeout_seconds=1),
                "kill": pb.KillVmRequest(id=name),
                "delete": pb.DeleteVmRequest(id=name),
            }[op]
            method = {"start": stub.StartVm, "stop": stub.StopVm, "kill": stub.KillVm,
                      "delete": stub.DeleteVm}[op]  # fmt: skip
        with self.lock:
            self.tried[(name, op)] += 1
        try:
            reply = method(request, timeout=deadline or 30)
        except grpc.RpcError as exc:
            if exc.code() not in EXPECTED:
                self.unexpected.append(f"{op} {name}: {exc.code()} {exc.details()}")
            return
        with self.lock:
            self.acked.append((name, op))
            if op == "create":
                self.names[name] = reply.id
            if op == "delete":
                self.deleted.add(name)

    def worker(self, disk_dir: Path) -> None:
        while not self.done.is_set():
            self.running.wait()
            text, deadline = self.pick()
            self.call(text, deadline, disk_dir)


def stored_pids(data_dir: Path) -> dict[str, int | None]:
    """VM id → the hypervisor pid the store holds."""
    db = sqlite3.connect(data_dir / "vmm.db")
    try:
        return dict(db.execute("SELECT id, pid FROM vms").fetchall())
    finally:
        db.close()


def audit_messages(log_daemon, vm_id: str) -> list[str]:
    with log_daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        return [e.message for e in stub.Query(log_pb2.QueryRequest(object_id=vm_id, limit=1000))]


@pytest.mark.slow
def test_soak_random_operations_cancellations_and_a_daemon_kill(start_log_daemon, start_vmm):
    seed = int(os.environ.get("MVIRT_SOAK_SEED", time.time_ns() % 1_000_000))
    print(f"soak seed {seed} (MVIRT_SOAK_SEED reproduces the choices)")
    log_daemon = start_log_daemon()
    args = ("--log-endpoint", log_daemon.endpoint, "--control-timeout", "5")
    vmm = start_vmm(*args)
    data_dir = vmm.data_dir
    soak = Soak(vmm, seed)
    workers = [
        threading.Thread(target=soak.worker, args=(data_dir.parent,), daemon=True)
        for _ in range(WORKERS)
    ]
    try:
        for worker in workers:
            worker.start()
        time.sleep(PHASE_SECONDS)  # the soak's duration, not a synchronisation
        vmm.daemon.kill()  # in the middle of whatever the clients are doing
        soak.running.clear()
        old = vmm
        soak.vmm = start_vmm(*args, data_dir=data_dir)
        old.close()
        soak.running.set()
        time.sleep(PHASE_SECONDS)
        soak.done.set()
        for worker in workers:
            worker.join(60)
            assert not worker.is_alive(), "a client hangs"
        assert soak.unexpected == [], soak.unexpected
        vmm = soak.vmm

        # Everything settles: no VM stays STARTING or STOPPING (stops end by their timeout).
        deadline = time.monotonic() + 30
        while True:
            vms = {v.name: v for v in vmm.stub.ListVms(pb.ListVmsRequest()).vms}
            if all(v.state in (pb.VM_STATE_STOPPED, pb.VM_STATE_RUNNING) for v in vms.values()):
                break
            assert time.monotonic() < deadline, {n: v.state for n, v in vms.items()}
            time.sleep(0.1)

        # Every VM's state matches its process; no hypervisor without a running VM.
        stored = stored_pids(data_dir)
        processes = hypervisors_in(data_dir)
        for vm in vms.values():
            pid = stored[vm.id]
            if vm.state == pb.VM_STATE_RUNNING:
                assert pid is not None and is_alive(pid) and vm.id in processes.get(pid, "")
            else:
                assert pid is None
                assert not [p for p, line in processes.items() if vm.id in line], vm.name
        owned = {stored[v.id] for v in vms.values() if v.state == pb.VM_STATE_RUNNING}
        assert set(processes) == owned, "orphaned hypervisors: " + str(set(processes) - owned)
        assert {n for n in soak.names if n not in soak.deleted} == set(vms)

        # The audit log: every acknowledged mutation, none twice.
        acked = collections.Counter(soak.acked)
        wanted = {
            "create": lambda name, m: m == f"VM {name} created",
            "delete": lambda name, m: m == f"VM {name} deleted",
            "kill": lambda name, m: m == f"VM {name} killed",
            "start": lambda name, m: m.startswith(f"VM {name} started (pid "),
            "stop": lambda name, m: m == f"VM {name} stopping (power button, timeout 1 s)",
        }
        for name, vm_id in soak.names.items():
            deadline = time.monotonic() + 20
            while True:
                messages = audit_messages(log_daemon, vm_id)
                counts = {
                    op: sum(matches(name, m) for m in messages) for op, matches in wanted.items()
                }
                missing = {op for op in wanted if counts[op] < acked[(name, op)]}
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert not missing, (name, missing, messages)
            assert counts["create"] == 1 and counts["delete"] <= 1, messages
            for op in ("kill", "start", "stop"):
                assert counts[op] <= soak.tried[(name, op)], (name, op, messages)
            starts = [m for m in messages if wanted["start"](name, m)]
            assert len(starts) == len(set(starts)), f"a start audited twice: {messages}"
    finally:
        soak.done.set()
        soak.running.set()
        for pid in hypervisors_in(data_dir):
            os.kill(pid, signal.SIGKILL)
