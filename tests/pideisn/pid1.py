"""Running pideisn as PID 1 of fresh PID, mount and UTS namespaces (inside a network
namespace), with /proc/cmdline and /etc/resolv.conf replaced by files of the test."""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def require_unshare() -> None:
    """Skip unless root with util-linux unshare (CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for PID/mount/UTS namespaces (CI runs as root)")
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")


def state_dir() -> Path:
    """A directory outside /tmp and /run, which pideisn mounts over inside its namespace."""
    return Path(tempfile.mkdtemp(prefix="pideisn-test-", dir="/var/tmp"))


class Pid1:
    """pideisn started as init; its console (stderr) is collected line by line."""

    def __init__(self, netns: str | None, directory: Path, cmdline: str | bytes) -> None:
        raw = cmdline if isinstance(cmdline, bytes) else cmdline.encode()
        (directory / "cmdline").write_bytes(raw + b"\n")
        (directory / "resolv.conf").write_text("")
        script = (
            f"mount --bind {directory}/cmdline /proc/cmdline && "
            f"mount --bind {directory}/resolv.conf /etc/resolv.conf && "
            f"exec {sys.executable} -m mvirt.pideisn"
        )
        argv = ["unshare", "--pid", "--fork", "--mount-proc", "--uts", "sh", "-c", script]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.directory = directory
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        assert self.proc.stderr is not None
        os.set_blocking(self.proc.stderr.fileno(), False)
        self._selector.register(self.proc.stderr, selectors.EVENT_READ)

    def host_pid(self) -> int:
        """The host pid of the namespace's PID 1 (the child of unshare)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for pid in children_of(self.proc.pid):
                if command_name(pid).startswith("python"):
                    return pid
            time.sleep(0.05)
        raise AssertionError("pideisn did not start")

    def _pump(self, timeout: float) -> None:
        assert self.proc.stderr is not None
        for _key, _ in self._selector.select(timeout):
            data = self.proc.stderr.read()
            if not data:
                return
            self._buffer += data
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode(errors="replace") for line in complete]

    def wait_for(self, text: str, timeout: float = 60, start: int = 0) -> str:
        """The first console line from index `start` containing `text`."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[start:]:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._selector.select(0)):
                raise AssertionError(f"no {text!r} on the console:\n" + "\n".join(self.lines))
            self._pump(min(left, 0.2))

    def wait_exit(self, timeout: float = 60) -> int:
        """Collect the remaining console output and return unshare's exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.2)
        self._pump(0)
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        """Kill whatever is left."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._selector.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def zombies_of(pid: int) -> list[int]:
    """Host pids of zombie children of `pid`."""
    out = []
    for child in children_of(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            out.append(child)
    return out
