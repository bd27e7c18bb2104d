"""A readiness probe command that hangs is killed after its timeout and run again: real child
processes, the loop's timers on a manual clock (time moves only when a test moves it)."""

import _signal
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mvirt.pideisn import services_file
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.signals import Reaper, SignalDispatcher
from mvirt.pideisn.supervisor import PROBE_INTERVAL, PROBE_TIMEOUT, Service, Supervisor

from .clock import ManualClock

PY = sys.executable
# The probe appends its pid to a file, then acts by its run number: H hangs, F exits 1, and
# every run past the plan exits 0 (ready).
PROBE = """
import os, sys, time
runs, plan = sys.argv[1], sys.argv[2]
n = len(open(runs).read().split()) if os.path.exists(runs) else 0
with open(runs, "a") as out:
    out.write(f"{os.getpid()}\\n")
mode = plan[n] if n < len(plan) else "O"
if mode == "H":
    time.sleep(120)
sys.exit(1 if mode == "F" else 0)
"""


class Harness:
    """A supervisor on a loop whose clock the test moves."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = ManualClock()
        self.loop = Loop(self.clock)
        self.reaper = Reaper()
        self.signals = SignalDispatcher(self.loop)
        self.signals.on(_signal.SIGCHLD, self.reaper.reap)
        self.runs = tmp_path / "probe-runs"
        self.supervisor: Supervisor | None = None

    def supervise(self, plan: str, **ready: object) -> Service:
        specs = services_file.parse(
            {
                "services": {
                    "daemon": {
                        "command": [PY, "-c", "import time; time.sleep(120)"],
                        "ready": {"command": [PY, "-c", PROBE, str(self.runs), plan], **ready},
                        "ready_timeout": 120,
                    }
                }
            }
        )
        self.supervisor = Supervisor(
            self.loop,
            self.reaper,
            specs,
            base_env={"PATH": os.environ["PATH"]},
            output=lambda _line: None,
        )
        self.supervisor.start()
        return self.supervisor.by_name["daemon"]

    def pump(self, done: Callable[[], bool], seconds: float = 20.0) -> bool:
        """Dispatch events (the clock stands still) until `done()` or `seconds` of real time."""
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                return False
            self.loop.run_once(0.05)
        return True

    def advance(self, seconds: float) -> None:
        """Move the clock and run the timers now due."""
        self.clock.now += seconds
        self.loop.fire_due()

    def pids(self) -> list[int]:
        return [int(p) for p in self.runs.read_text().split()] if self.runs.exists() else []

    def probe_started(self, count: int) -> int:
        """The pid of the `count`th probe run, once it has started."""
        assert self.pump(lambda: len(self.pids()) >= count), f"probe run {count} never started"
        return self.pids()[count - 1]

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        self.signals.close()
        self.loop.close()


@pytest.fixture
def harness(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def gone(pid: int) -> bool:
    """True once `pid` has exited and been reaped (a zombie still counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_hung_probe_is_killed_after_the_timeout_and_the_next_run_makes_it_ready(harness, capfd):
    daemon = harness.supervise("H")
    hung = harness.probe_started(1)
    harness.advance(PROBE_TIMEOUT - 0.5)
    assert daemon.probe_pid == hung and not gone(hung)  # not before its time
    harness.advance(0.6)
    assert harness.pump(lambda: gone(hung)), "the hung probe was not killed"
    assert not daemon.ever_ready  # a killed probe is no answer
    assert harness.pids() == [hung]  # and the next run waits PROBE_INTERVAL
    harness.advance(PROBE_INTERVAL)
    assert harness.pump(lambda: daemon.ever_ready)
    assert len(harness.pids()) == 2
    err = capfd.readouterr().err
    assert f"daemon: readiness probe command {PY} -c" in err
    assert f"timed out after {PROBE_TIMEOUT:g} s" in err


def test_the_killed_probes_exit_is_not_taken_for_the_next_runs_answer(harness, capfd):
    """The next run starts before the killed one is reaped; that exit changes nothing, and the
    timeout is logged once however often it happens."""
    daemon = harness.supervise("HH")
    first = harness.probe_started(1)
    harness.advance(PROBE_TIMEOUT + 0.01)
    harness.advance(PROBE_INTERVAL + 0.01)  # no events dispatched: the first is not reaped yet
    second = harness.probe_started(2)
    assert daemon.probe_pid == second
    assert harness.pump(lambda: gone(first))
    assert daemon.probe_pid == second and not gone(second)  # still waited for
    assert not daemon.ever_ready
    harness.advance(PROBE_TIMEOUT + 0.01)
    assert harness.pump(lambda: gone(second))
    harness.advance(PROBE_INTERVAL + 0.01)
    assert harness.pump(lambda: daemon.ever_ready)
    assert len(harness.pids()) == 3
    assert capfd.readouterr().err.count("timed out after") == 1


def test_the_timeout_counts_from_each_runs_own_start(harness):
    """A run that failed quickly leaves no timer behind that would cut the next run short."""
    daemon = harness.supervise("FH")
    first = harness.probe_started(1)
    assert harness.pump(lambda: gone(first) and daemon.probe_pid is None)
    harness.advance(PROBE_INTERVAL + 0.25)
    second = harness.probe_started(2)
    harness.advance(PROBE_TIMEOUT - PROBE_INTERVAL)  # past the first run's start + timeout
    assert daemon.probe_pid == second and not gone(second)
    harness.advance(0.51)
    assert harness.pump(lambda: gone(second))
    harness.advance(PROBE_INTERVAL)
    assert harness.pump(lambda: daemon.ever_ready)


def test_ready_timeout_of_the_services_file_replaces_the_default(harness, capfd):
    daemon = harness.supervise("H", timeout=30)
    hung = harness.probe_started(1)
    harness.advance(PROBE_TIMEOUT + 1)
    assert daemon.probe_pid == hung and not gone(hung)
    harness.advance(30 - PROBE_TIMEOUT - 1)
    assert harness.pump(lambda: gone(hung))
    harness.advance(PROBE_INTERVAL)
    assert harness.pump(lambda: daemon.ever_ready)
    assert "timed out after 30 s" in capfd.readouterr().err
