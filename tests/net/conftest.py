"""Fixtures for mvirt-net: the real daemon running inside a network namespace the test
creates, reached over gRPC through a relay."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mvirt.proto import net_pb2_grpc
from tests.net.netns import Netns, Relay

DAEMON_PORT = 50054


class NetDaemon:
    """One mvirt-net process inside ``netns`` with a blocking stub."""

    def __init__(self, netns: Netns, data_dir: Path, *args: str, log_endpoint: str = "") -> None:
        self.log_endpoint = log_endpoint
        self.netns = netns
        self.data_dir = data_dir
        self.args = list(args)
        self.stderr_path = data_dir.parent / "mvirt-net.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.relay = Relay(netns.name, DAEMON_PORT)
        self.channel = grpc.insecure_channel(self.relay.endpoint)
        self.stub = net_pb2_grpc.NetServiceStub(self.channel)

    def start(self) -> NetDaemon:
        """Starts the daemon and waits until its health check says SERVING."""
        self.proc = self.netns.popen(
            [
                sys.executable,
                "-m",
                "mvirt.net",
                "--listen",
                f"127.0.0.1:{DAEMON_PORT}",
                "--data-dir",
                str(self.data_dir),
                "--log-endpoint",
                self.log_endpoint,
                *self.args,
            ],
            self.stderr_path,
        )
        self.wait_serving()
        return self

    def stderr(self) -> str:
        """What the daemon wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Polls grpc.health.v1 until SERVING; fails with the daemon's stderr if it died."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        health = health_pb2_grpc.HealthStub(self.channel)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mvirt-net exited {self.proc.returncode}: {self.stderr()}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
        pytest.fail(f"mvirt-net not serving after {timeout}s: {self.stderr()}")

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self) -> int:
        """SIGTERM, then the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(20)

    def close(self) -> None:
        """Kills the daemon and closes the client side."""
        self.kill()
        self.channel.close()
        self.relay.close()


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A fresh network namespace, deleted afterwards."""
    ns = Netns()
    yield ns
    ns.delete()


@pytest.fixture
def start_net(netns: Netns) -> Iterator[object]:
    """Factory: ``start_net(*args, data_dir=None)`` starts mvirt-net inside ``netns``."""
    started: list[NetDaemon] = []
    tmp = Path(tempfile.mkdtemp(prefix="mvnet-"))

    def start(*args: str, data_dir: Path | None = None, log_endpoint: str = "") -> NetDaemon:
        daemon = NetDaemon(netns, data_dir or tmp / "data", *args, log_endpoint=log_endpoint)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.close()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def net(start_net) -> NetDaemon:
    """One mvirt-net in a fresh namespace with a fresh data dir."""
    daemon: NetDaemon = start_net()
    return daemon
