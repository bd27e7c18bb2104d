"""Fixtures for mvirt-zfs: the zfs-fuse service, a fresh pool on a file per test, and the
daemon started for real on that pool."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from mvirt.proto import zfs_pb2_grpc
from tests.conftest import DaemonProcess

POOL_FILE_SIZE = 1 << 30
_counter = itertools.count()


def zpool(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs ``zpool`` and returns what it printed."""
    return subprocess.run(["zpool", *args], capture_output=True, text=True, check=False)


def zfs(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs ``zfs`` and returns what it printed."""
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=False)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Polls ``condition`` until it is true or fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def zfs_service() -> None:
    """A running zfs-fuse (started here when it is not: CI begins on a fresh machine)."""
    if shutil.which("zfs-fuse") is None:
        pytest.fail("zfs-fuse is not installed; run scripts/bootstrap.sh")
    if os.geteuid() != 0:
        pytest.skip("zfs-fuse pools need root")
    if zpool("list").returncode != 0:
        subprocess.run(["zfs-fuse", "--no-kstat-mount"], check=True)
        wait_for(lambda: zpool("list").returncode == 0, 30, "zfs-fuse to answer `zpool list`")


def destroy_pool(name: str) -> None:
    """Destroys a test pool (zfs-fuse reports it busy for a moment after files closed)."""
    deadline = time.monotonic() + 180
    mounted = zfs("get", "-H", "-r", "-o", "name,value", "mounted", name).stdout.splitlines()
    for line in reversed(mounted):
        dataset, _, value = line.partition("\t")
        if value == "yes":
            zfs("unmount", dataset)
    while True:
        result = zpool("destroy", name)
        if result.returncode == 0 or "no such pool" in result.stderr:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"cannot destroy test pool {name}: {result.stderr}")
        time.sleep(0.1)


@pytest.fixture
def pool(zfs_service: None, tmp_path: Path) -> Iterator[str]:
    """A new pool on a sparse file, with a name unique to this test run."""
    name = f"mvt{os.getpid()}x{next(_counter)}"
    image = tmp_path / "pool.img"
    with open(image, "wb") as file:
        file.truncate(POOL_FILE_SIZE)
    result = zpool("create", "-m", "none", name, str(image))
    assert result.returncode == 0, result.stderr
    yield name
    destroy_pool(name)


class ZfsDaemon(DaemonProcess):
    """mvirt-zfs on a test pool."""

    pool: str

    def stub(self, channel: grpc.Channel) -> zfs_pb2_grpc.ZfsServiceStub:
        """A ZfsService stub on ``channel``."""
        return zfs_pb2_grpc.ZfsServiceStub(channel)

    def datasets(self, parent: str) -> list[str]:
        """Children (and their snapshots) of ``<pool>/<parent>``."""
        out = zfs("get", "-H", "-r", "-o", "name", "type", f"{self.pool}/{parent}").stdout
        return [n for n in out.split() if n != f"{self.pool}/{parent}"]


@pytest.fixture
def start_zfs_daemon(pool: str, tmp_path: Path) -> Iterator[Callable[..., ZfsDaemon]]:
    """Factory: starts mvirt-zfs on ``pool`` (same data dir each time, so restarts keep
    state); imports may read files under ``tmp_path``."""
    started: list[ZfsDaemon] = []

    def start(*args: str, log_endpoint: str = "") -> ZfsDaemon:
        daemon = ZfsDaemon(
            "mvirt.zfs",
            tmp_path / "zfs-data",
            None,
            "--pool",
            pool,
            "--log-endpoint",
            log_endpoint,
            "--import-root",
            str(tmp_path),
            "--shutdown-grace",
            "2",
            *args,
        )
        daemon.pool = pool
        started.append(daemon)
        daemon.start()
        return daemon

    yield start
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.terminate(60)


@pytest.fixture
def zfs_daemon(start_zfs_daemon: Callable[..., ZfsDaemon]) -> ZfsDaemon:
    """A running mvirt-zfs on a fresh pool."""
    return start_zfs_daemon()
