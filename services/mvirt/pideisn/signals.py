"""Signals turned into loop events, and the reaping of every child (orphans included).

Handlers only make the interpreter write the signal number to a pipe (set_wakeup_fd); the
loop reads it and dispatches, so nothing runs inside a signal handler. `_signal` is used
instead of `signal` to skip the latter's enum set-up at boot.
"""

from __future__ import annotations

import _signal
import os

from mvirt.pideisn.console import log
from mvirt.pideisn.loop import Loop

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def _ignore(signum: int, frame: object) -> None:
    """Installed so the wakeup byte is written; the work happens in the loop."""


class SignalDispatcher:
    """Delivers signals to callbacks from the event loop."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._handlers: dict[int, Callable[[], None]] = {}
        _signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        loop.add_reader(self._read, self._drain)

    def on(self, signum: int, callback: Callable[[], None]) -> None:
        """Run `callback` in the loop whenever `signum` arrives."""
        self._handlers[signum] = callback
        _signal.signal(signum, _ignore)

    def _drain(self) -> None:
        try:
            data = os.read(self._read, 512)
        except BlockingIOError:
            return
        for signum in dict.fromkeys(data):
            callback = self._handlers.get(signum)
            if callback is not None:
                callback()

    def close(self) -> None:
        """Restore default handling and close the pipe."""
        _signal.set_wakeup_fd(-1)
        for signum in self._handlers:
            _signal.signal(signum, _signal.SIG_DFL)
        self.loop.remove_reader(self._read)
        os.close(self._read)
        os.close(self._write)


class Reaper:
    """Collects every exited child; watched pids get their wait status reported."""

    def __init__(self) -> None:
        self._watched: dict[int, Callable[[int], None]] = {}
        self.orphans_reaped = 0

    def watch(self, pid: int, callback: Callable[[int], None]) -> None:
        """Call `callback(wait_status)` when `pid` exits."""
        self._watched[pid] = callback

    def reap(self) -> None:
        """waitpid(-1) until no exited child is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            callback = self._watched.pop(pid, None)
            if callback is None:
                self.orphans_reaped += 1
                continue
            try:
                callback(status)
            except Exception as exc:
                log(f"child {pid} exit handler failed: {exc!r}")


def describe_status(status: int) -> str:
    """`exit 3` / `signal 9` from a wait status."""
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"
