"""Shared fixtures: real mvirt daemons started as subprocesses on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests import namespaces

# Builds started by the tests (the e2e image build) go on without the pinned downloads whose
# hosts this machine cannot reach, as `make` does; a test that wants them fatal says so itself.
os.environ.setdefault("MVIRT_ALLOW_MISSING_DOWNLOADS", "1")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Network namespaces an earlier, killed run left behind go first (tests/namespaces.py)."""
    if os.geteuid() == 0 and shutil.which("ip") is not None:
        namespaces.remove_stale()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """One daemon subprocess (``python -m <module>``, or ``python <module>`` for a path ending
    in .py) with its stderr kept in a file."""

    def __init__(self, module: str, data_dir: Path, port: int | None = None, *args: str) -> None:
        self.module = module
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.endpoint = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = data_dir.parent / f"{data_dir.name}-{self.port}.stderr"

    def start(self, wait: bool = True) -> DaemonProcess:
        """Starts the daemon and (by default) waits until its health check says SERVING."""
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    *self._program(),
                    "--listen",
                    self.endpoint,
                    "--data-dir",
                    str(self.data_dir),
                    *self.args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Polls grpc.health.v1 until SERVING; fails with the daemon's stderr if it died."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        # Wait for the port first: a gRPC channel that failed to connect backs off for
        # seconds before it tries again.
        while not self._port_open():
            if self.proc.poll() is not None:
                pytest.fail(f"{self.module} exited {self.proc.returncode}: {self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.module} not listening after {timeout}s: {self.stderr()}")
            time.sleep(0.02)
        with grpc.insecure_channel(self.endpoint) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        pytest.fail(f"{self.module} not serving after {timeout}s: {self.stderr()}")

    def _program(self) -> list[str]:
        return [self.module] if self.module.endswith(".py") else ["-m", self.module]

    def _port_open(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stderr(self) -> str:
        """What the daemon wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, then waits for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (no chance to clean up), then reaps the process."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def channel(self) -> grpc.Channel:
        """A new blocking channel to the daemon (close it, or use ``with``)."""
        return grpc.insecure_channel(self.endpoint)


@pytest.fixture
def start_log_daemon(tmp_path: Path) -> Iterator[object]:
    """Factory: ``start_log_daemon(*extra_args, data_dir=None, port=None)`` starts mvirt-log."""
    started: list[DaemonProcess] = []

    def start(
        *args: str, data_dir: Path | None = None, port: int | None = None, wait: bool = True
    ) -> DaemonProcess:
        daemon = DaemonProcess("mvirt.log", data_dir or tmp_path / "log-data", port, *args)
        started.append(daemon)
        return daemon.start(wait)

    yield start
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()


@pytest.fixture
def log_daemon(start_log_daemon) -> DaemonProcess:
    """A running mvirt-log on a temporary data dir."""
    return start_log_daemon()
