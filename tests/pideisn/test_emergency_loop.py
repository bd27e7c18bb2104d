"""The emergency loop, PID 1's last resort: it keeps reaping and still powers off on request.
Run as PID 1 of a fresh PID namespace (needs root; skipped otherwise)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .pid1 import children_of, command_name, require_unshare, zombies_of

pytestmark = pytest.mark.slow

CODE = """
import os
from mvirt.pideisn.init import emergency_loop
for _ in range(3):
    if os.fork() == 0:
        os._exit(0)
emergency_loop(None)
"""


def test_emergency_loop_reaps_and_powers_off_on_sigusr2():
    require_unshare()
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", CODE],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid1 = None
        deadline = time.monotonic() + 20
        while pid1 is None and time.monotonic() < deadline:
            pid1 = next(
                (p for p in children_of(proc.pid) if command_name(p).startswith("python")), None
            )
            time.sleep(0.05)
        assert pid1 is not None
        while zombies_of(pid1) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert zombies_of(pid1) == []  # the exited children were reaped
        time.sleep(0.5)
        os.kill(pid1, signal.SIGUSR2)
        _out, err = proc.communicate(timeout=20)
        assert "emergency loop: reaping children" in err
        assert "powering off" in err
        assert proc.returncode == -signal.SIGINT, err  # reboot(2) POWER_OFF in a PID namespace
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
