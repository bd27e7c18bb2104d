"""The image's /init when PID 1's module is broken: it says why, keeps reaping and still powers
off. The real /init text runs as PID 1 of a fresh PID namespace (needs root; skipped
otherwise), with a broken `mvirt.pideisn.init` first on its path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mvirt_build.stages.initramfs import INTERPRETER, init_script

pytestmark = pytest.mark.slow

# Leaves three exited children behind, then fails to import.
BROKEN = """
import os
for _ in range(3):
    if os.fork() == 0:
        os._exit(0)
raise ImportError("bad magic number in 'mvirt.pideisn.init'")
"""


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def zombies(pid: int) -> list[int]:
    out = []
    for child in children(pid):
        try:
            if "State:\tZ" in Path(f"/proc/{child}/status").read_text():
                out.append(child)
        except OSError:
            continue
    return out


def test_init_with_a_broken_pid1_module_reaps_and_powers_off(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and util-linux unshare for a PID namespace (CI runs as root)")
    package = tmp_path / "mvirt" / "pideisn"
    package.mkdir(parents=True)
    (tmp_path / "mvirt" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "init.py").write_text(BROKEN)
    init = tmp_path / "init"
    init.write_bytes(init_script("mvirt.pideisn.init:main"))
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", INTERPRETER, "-S", str(init)],
        env={"PYTHONPATH": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = ""
        deadline = time.monotonic() + 30
        while "emergency loop" not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()  # the rescue's handlers are set before this line
            if not line:
                break
            seen += line
        assert "emergency loop" in seen, seen
        pid1 = next(iter(children(proc.pid)), None)
        assert pid1 is not None
        while zombies(pid1) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert zombies(pid1) == []  # the three exited children were reaped
        os.kill(pid1, signal.SIGUSR2)
        _out, rest = proc.communicate(timeout=30)
        err = seen + rest
        assert "cannot import mvirt.pideisn.init: ImportError" in err
        assert "emergency loop: reaping children" in err
        assert "powering off" in err
        assert proc.returncode == -signal.SIGINT, err  # reboot(2) POWER_OFF in a PID namespace
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
