"""Host packages as an admin meets them: `make release` output that reproduces, and .deb
packages that install, upgrade and purge cleanly on a fresh Debian 12 (a chroot made here by
debootstrap from the machine's own mirror), with daemons that start from the installed paths
and answer."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mvirt.proto import log_pb2, log_pb2_grpc
from mvirt_build import packages
from mvirt_build.apt_sources import mirror_for
from mvirt_build.config import source_date_epoch
from tests.conftest import free_port
from tests.namespaces import namespace_name

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PACKAGES = ("mvirt-common", "mvirt", "mvirt-log", "mvirt-vmm", "mvirt-zfs", "mvirt-net")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wheel_and_sdist_are_the_same_bytes_from_the_same_commit(tmp_path):
    epoch = source_date_epoch(ROOT)
    first = packages.stage_sources(ROOT, tmp_path / "a" / "mvirt")
    second = packages.stage_sources(ROOT, tmp_path / "b" / "mvirt")
    # A later checkout of the same commit: every file has another mtime.
    for path in second.rglob("*"):
        os.utime(path, (epoch + 86400, epoch + 86400), follow_symlinks=False)
    made = [packages.build_python(src, src.parent / "dist", epoch) for src in (first, second)]
    (wheel_a, sdist_a), (wheel_b, sdist_b) = made
    assert wheel_a.name == wheel_b.name and sdist_a.name == sdist_b.name
    assert _sha256(wheel_a) == _sha256(wheel_b)
    assert _sha256(sdist_a) == _sha256(sdist_b)


def test_make_docker_without_an_engine_says_so_in_one_line():
    proc = subprocess.run(
        ["make", "-s", "docker"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
    ):
        pytest.skip("a Docker engine answers here: make docker would really build")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("make docker: ") and "make iso" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """`mvirt-build release` of this checkout: the .deb packages it made."""
    dist = tmp_path_factory.mktemp("dist")
    made = packages.release(ROOT, dist, source_date_epoch(ROOT))
    assert {deb.name.split("_")[0] for deb in made.debs} == set(PACKAGES)
    return made.debs


class Chroot:
    """A fresh Debian 12 (debootstrap minbase) to install the packages into."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *cmd: str, env: dict[str, str] | None = None) -> str:
        full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"}
        full_env.update(env or {})
        proc = subprocess.run(
            ["chroot", str(self.root), *cmd],
            capture_output=True,
            text=True,
            env=full_env,
            check=False,
            timeout=900,
        )
        assert proc.returncode == 0, f"{cmd}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        return proc.stdout

    def install(self, debs: list[Path]) -> None:
        inbox = self.root / "tmp" / "debs"
        shutil.rmtree(inbox, ignore_errors=True)
        inbox.mkdir(parents=True)
        for deb in debs:
            shutil.copy(deb, inbox)
        self.run(
            "apt-get", "install", "-y", "-q", "--no-install-recommends",
            *(f"/tmp/debs/{deb.name}" for deb in debs),
        )  # fmt: skip

    def start(self, *cmd: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["chroot", str(self.root), *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )


@pytest.fixture(scope="module")
def chroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chroot]:
    root = tmp_path_factory.mktemp("debian12")
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root), mirror_for("bookworm")],
        capture_output=True,
        check=True,
        timeout=1200,
    )
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    # As in any chroot: packages must not start services (zfs-fuse's init script would).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    subprocess.run(["mount", "-t", "sysfs", "sysfs", str(root / "sys")], check=True)
    try:
        box = Chroot(root)
        box.run("apt-get", "update", "-q")
        yield box
    finally:
        for mount in ("sys", "proc"):
            subprocess.run(["umount", "-l", str(root / mount)], check=False)


def _serving(port: int, proc: subprocess.Popen[bytes], deadline: float = 60) -> None:
    """Wait until the daemon on ``port`` reports SERVING (or fail with its stderr)."""
    end = time.monotonic() + deadline
    with grpc.insecure_channel(f"[::1]:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < end, f"no SERVING on port {port} in {deadline} s"
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _log_entry(port: int, message: str) -> None:
    with grpc.insecure_channel(f"[::1]:{port}") as channel:
        entry = log_pb2.LogEntry(message=message, component="test")
        log_pb2_grpc.LogServiceStub(channel).Log(log_pb2.LogRequest(entry=entry), timeout=10)


def _messages(port: int) -> list[str]:
    with grpc.insecure_channel(f"[::1]:{port}") as channel:
        stream = log_pb2_grpc.LogServiceStub(channel).Query(
            log_pb2.QueryRequest(limit=100), timeout=10
        )
        return [entry.message for entry in stream]


def _start_log(box: Chroot) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = box.start(
        "/usr/sbin/mvirt-log", "--listen", f"[::1]:{port}", "--data-dir", "/var/lib/mvirt/log"
    )
    _serving(port, proc)
    return proc, port


def _net_answers_in_its_own_namespace(box: Chroot) -> None:
    """mvirt-net configures the network it runs in: start it in a namespace made here, and ask
    its health service from inside that namespace with the installed runtime."""
    namespace = namespace_name("release")
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    inside = ["ip", "netns", "exec", namespace, "chroot", str(box.root)]
    daemon = None
    try:
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
        daemon = subprocess.Popen(
            [*inside, "/usr/sbin/mvirt-net", "--listen", "[::1]:50054", "--log-endpoint", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        check = (
            "import grpc, sys, time\n"
            "from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g\n"
            "stub = g.HealthStub(grpc.insecure_channel('[::1]:50054'))\n"
            "end = time.monotonic() + 60\n"
            "while time.monotonic() < end:\n"
            "    try:\n"
            "        if stub.Check(h.HealthCheckRequest(), timeout=2).status == 1: sys.exit(0)\n"
            "    except grpc.RpcError: pass\n"
            "    time.sleep(0.2)\n"
            "sys.exit(1)\n"
        )
        proc = subprocess.run(
            [*inside, "/opt/venvs/mvirt/bin/python", "-c", check],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert daemon.poll() is None
    finally:
        if daemon is not None:
            _stop(daemon)
        subprocess.run(["ip", "netns", "delete", namespace], check=False)


def _bump(debs: list[Path], version: str, out: Path) -> list[Path]:
    """The same packages under a newer version: what an upgrade installs."""
    bumped = []
    for deb in debs:
        tree = out / deb.stem
        subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
        control = tree / "DEBIAN" / "control"
        old = next(
            line.split(": ", 1)[1]
            for line in control.read_text().splitlines()
            if line.startswith("Version: ")
        )
        control.write_text(control.read_text().replace(old, version))
        target = out / deb.name.replace(f"_{old}_", f"_{version}_")
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-b", str(tree), str(target)],
            capture_output=True,
            check=True,
        )
        bumped.append(target)
    return bumped


def test_packages_install_run_upgrade_and_purge_cleanly(debs, chroot, tmp_path):
    root = chroot.root
    chroot.install(debs)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    for unit in ("mvirt-log", "mvirt-vmm", "mvirt-net", "mvirt-zfs"):
        text = (root / "lib/systemd/system" / f"{unit}.service").read_text()
        assert "NoNewPrivileges=yes" in text and "CapabilityBoundingSet=" in text
        assert f"StateDirectory=mvirt/{unit.removeprefix('mvirt-')}" in text
        assert (root / f"etc/mvirt/{unit.removeprefix('mvirt-')}.env").is_file()
    # Enabled by their packages, as Debian enables a service it installs; mvirt-zfs only once
    # a pool is configured.
    assert {p.name for p in wants.iterdir() if p.name.startswith("mvirt-")} == {
        "mvirt-log.service",
        "mvirt-vmm.service",
        "mvirt-net.service",
    }
    # Every daemon's entry point runs from its installed path.
    for daemon in ("mvirt-log", "mvirt-vmm", "mvirt-zfs", "mvirt-net"):
        assert "--data-dir" in chroot.run(f"/usr/sbin/{daemon}", "--help")

    # The daemons start from the installed paths and answer; the client talks to them.
    log, log_port = _start_log(chroot)
    vmm_port = free_port()
    vmm = chroot.start(
        "/usr/sbin/mvirt-vmm", "--listen", f"[::1]:{vmm_port}",
        "--data-dir", "/var/lib/mvirt/vmm", "--log-endpoint", f"[::1]:{log_port}",
    )  # fmt: skip
    try:
        _serving(vmm_port, vmm)
        system = chroot.run("/usr/bin/mvirt", "--server", f"[::1]:{vmm_port}", "system")
        assert "cpu" in system.lower()
        _log_entry(log_port, "before the upgrade")
    finally:
        _stop(vmm)
        _stop(log)

    _net_answers_in_its_own_namespace(chroot)

    # Upgrade: the state survives and the daemon still starts.
    chroot.install(_bump(debs, "0.1.0+upgrade1", tmp_path))
    assert "0.1.0+upgrade1" in chroot.run("dpkg-query", "-W", "-f=${Version}", "mvirt-log")
    log, log_port = _start_log(chroot)
    try:
        assert "before the upgrade" in _messages(log_port)
    finally:
        _stop(log)

    # Purge: nothing of ours is left in /opt, /etc or /var/lib.
    chroot.run("apt-get", "purge", "-y", "-q", *PACKAGES)
    assert not (root / "opt/venvs").exists()
    assert not (root / "etc/mvirt").exists()
    assert not (root / "var/lib/mvirt").exists()
    assert not list((root / "etc/systemd/system").rglob("mvirt-*"))
    assert not list((root / "lib/systemd/system").glob("mvirt-*"))

    # Unless asked to keep the state.
    chroot.install(debs)
    log, log_port = _start_log(chroot)
    try:
        _log_entry(log_port, "keep me")
    finally:
        _stop(log)
    chroot.run("apt-get", "purge", "-y", "-q", *PACKAGES, env={"MVIRT_KEEP_STATE": "1"})
    assert (root / "var/lib/mvirt/log").is_dir()
    assert not (root / "opt/venvs").exists()
