"""Fixtures for mvirt-vmm: the real daemon as a subprocess, gRPC stubs, console sessions."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mvirt.proto import vmm_pb2, vmm_pb2_grpc
from tests.conftest import DaemonProcess

FAKE_CH = Path(__file__).with_name("fake_cloud_hypervisor.py")
REPO = Path(__file__).resolve().parents[2]


def image_root_args() -> list[str]:
    """``--image-root`` for where tests keep VM files: /tmp, the build dir (kernels, UKI, with
    links resolved: the build may link into a cache) and the dirs of MVIRT_TEST_* files."""
    roots = {"/tmp", str(REPO / "build")}
    for name in ("MVIRT_TEST_KERNEL", "MVIRT_TEST_UKI"):
        if os.environ.get(name):
            roots.add(os.path.dirname(os.path.realpath(os.environ[name])))
    for candidate in ("build/bzImage", "build/kernel/bzImage", "build/mvirt-uos.efi"):
        if (REPO / candidate).exists():
            roots.add(os.path.dirname(os.path.realpath(REPO / candidate)))
    return [arg for root in sorted(roots) for arg in ("--image-root", root)]


def short_tmpdir(prefix: str) -> Path:
    """A directory under /tmp: unix socket paths inside VM folders must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def hypervisor_pids(data_dir: Path) -> list[int]:
    """pids of hypervisors the daemon's store still lists."""
    db_path = data_dir / "vmm.db"
    if not db_path.exists():
        return []
    db = sqlite3.connect(db_path)
    try:
        return [row[0] for row in db.execute("SELECT pid FROM vms WHERE pid IS NOT NULL")]
    finally:
        db.close()


class Vmm:
    """A running mvirt-vmm plus a blocking stub."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.channel = daemon.channel()
        self.stub = vmm_pb2_grpc.VmServiceStub(self.channel)

    @property
    def data_dir(self) -> Path:
        return self.daemon.data_dir

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def start_vmm() -> Iterator[object]:
    """Factory: ``start_vmm(*args, data_dir=None)`` starts mvirt-vmm (QEMU, TCG by default).

    Teardown kills the daemons and every hypervisor their stores still list, and removes the
    data dirs.
    """
    started: list[Vmm] = []
    dirs: list[Path] = []

    def start(*args: str, data_dir: Path | None = None) -> Vmm:
        if data_dir is None:
            data_dir = short_tmpdir("mvv-") / "data"
            dirs.append(data_dir.parent)
        if not any(a.startswith("--accel") or a.startswith("--hypervisor") for a in args):
            args = ("--accel", "tcg", *args)
        if not any(a.startswith("--image-root") for a in args):
            args = (*image_root_args(), *args)
        # No mvirt-log in these tests: audit entries go to the daemon's spool and local log.
        daemon = DaemonProcess("mvirt.vmm", data_dir, None, *args)
        daemon.start()
        vmm = Vmm(daemon)
        started.append(vmm)
        return vmm

    yield start
    for vmm in started:
        vmm.close()
        proc = vmm.daemon.proc
        if proc is not None and proc.poll() is None:
            vmm.daemon.kill()
    for vmm in started:
        for pid in hypervisor_pids(vmm.data_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def vmm(start_vmm) -> Vmm:
    """One mvirt-vmm on QEMU/TCG with a fresh data dir."""
    vmm: Vmm = start_vmm()
    return vmm


class ConsoleSession:
    """A Console stream: keystrokes in through a queue, output collected by a thread."""

    def __init__(self, stub: vmm_pb2_grpc.VmServiceStub, vm_id: str) -> None:
        self._input: queue.Queue[bytes | None] = queue.Queue()
        self._output = bytearray()
        self._lock = threading.Condition()
        self.ended = False

        def requests() -> Iterator[vmm_pb2.ConsoleInput]:
            yield vmm_pb2.ConsoleInput(vm_id=vm_id)
            while (data := self._input.get()) is not None:
                yield vmm_pb2.ConsoleInput(data=data)

        self.call = stub.Console(requests())
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self.call:
                with self._lock:
                    self._output += message.data
                    self._lock.notify_all()
        except grpc.RpcError as exc:
            self.error = exc
        with self._lock:
            self.ended = True
            self._lock.notify_all()

    @property
    def output(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def send(self, text: str) -> None:
        self._input.put(text.encode())

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """Wait until ``text`` appeared in the output; fails with the output so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while text.encode() not in self._output:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.ended:
                    break
                self._lock.wait(remaining)
            out = self._output.decode(errors="replace")
        if text not in out:
            pytest.fail(f"{text!r} not seen on the console within {timeout}s; got:\n{out[-3000:]}")
        return out

    def wait_ended(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        assert self.ended

    def close(self) -> None:
        self._input.put(None)
        self.call.cancel()
        self._thread.join(10)


@pytest.fixture
def console_sessions() -> Iterator[object]:
    """Factory for :class:`ConsoleSession`; closes them all at the end."""
    sessions: list[ConsoleSession] = []

    def open_session(stub: vmm_pb2_grpc.VmServiceStub, vm_id: str) -> ConsoleSession:
        session = ConsoleSession(stub, vm_id)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.close()
