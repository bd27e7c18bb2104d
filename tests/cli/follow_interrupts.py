"""Runs ``mvirt logs --follow`` many times in one process against a real mvirt-log and
interrupts each run with SIGINT at a random moment after its stream delivered output.

Usage: ``python follow_interrupts.py ENDPOINT RUNS SEED [lines]``. Exits 0 and prints
``RUNS clean`` when every run ended by itself, without an exception. A run that raises prints
the traceback and exits 2; a run still going 10 s after its SIGINT makes faulthandler print
every thread's stack and exit 1.

Without ``lines``, SIGINT comes from another thread at a random moment. With ``lines``, run N
raises SIGINT in the main thread exactly at the N-th line of Python the main thread executes
after the stream's first output (counting every line of every module: the CLI, gRPC's
iterator, ``threading``): the interrupt lands at every point of the stream's code in turn,
including the narrow windows inside a lock's release and re-acquisition that a signal from
outside hits only once in hundreds of tries.
"""

from __future__ import annotations

import faulthandler
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

from mvirt.cli.main import cli

TraceFunction = Any

HANG_S = 10.0


def interrupt_after_output(out: Path, delay: float, main: int, done: threading.Event) -> None:
    deadline = time.monotonic() + HANG_S
    while out.stat().st_size == 0:  # the stream has not delivered anything yet
        if done.is_set() or time.monotonic() > deadline:
            return
        time.sleep(0.002)
    time.sleep(delay)
    if not done.is_set():
        signal.pthread_kill(main, signal.SIGINT)


class LineTrigger:
    """Raises SIGINT at the N-th line event of the main thread once output has started."""

    def __init__(self, out: Path, line: int) -> None:
        self.out = out
        self.line = line
        self.count = 0
        self.started = False

    def trace(self, frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        if self.count > self.line:
            return None
        if not self.started:
            self.started = self.out.stat().st_size > 0
            return self.trace
        if event == "line":
            self.count += 1
            if self.count == self.line:
                self.count += 1
                signal.raise_signal(signal.SIGINT)
        return self.trace


def main() -> int:
    endpoint, runs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    by_line = sys.argv[4:] == ["lines"]
    err = sys.__stderr__
    assert err is not None
    rng = random.Random(seed)
    args = ["logs", "--follow", "-o", "json", "-n", "1", "--log-server", endpoint]
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "out"
        for run in range(runs):
            done = threading.Event()
            with open(out_path, "w") as out:
                sys.stdout = out
                killer = threading.Thread(
                    target=interrupt_after_output,
                    args=(out_path, rng.uniform(0, 0.05), threading.get_ident(), done),
                )
                if by_line:
                    sys.settrace(LineTrigger(out_path, run + 1).trace)
                else:
                    killer.start()
                faulthandler.dump_traceback_later(HANG_S, exit=True, file=err)
                try:
                    cli.main(args, standalone_mode=False)
                except BaseException:
                    print(f"run {run}: the command raised", file=err)
                    traceback.print_exc(file=err)
                    os._exit(2)
                finally:
                    sys.settrace(None)
                    faulthandler.cancel_dump_traceback_later()
                    done.set()
                    sys.stdout = sys.__stdout__
                    if killer.is_alive():
                        killer.join()
    print(f"{runs} clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
