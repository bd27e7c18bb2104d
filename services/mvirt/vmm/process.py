"""The one way this package runs processes: short commands with :func:`run`, hypervisors with
:func:`spawn`, and pid bookkeeping that also works for processes this daemon did not start
(hypervisors re-adopted after a restart are not our children)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("mvirt.vmm.process")


class CommandError(Exception):
    """A command failed; the message carries its output so the cause is visible."""


@dataclass(frozen=True)
class Completed:
    """Result of a finished command."""

    returncode: int
    stdout: str
    stderr: str


async def run(argv: Sequence[str], *, timeout: float = 30.0, check: bool = True) -> Completed:
    """Run a short command, capture its output, and raise :class:`CommandError` on failure."""
    log.debug("run: %s", " ".join(argv))
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise CommandError(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise CommandError(f"{argv[0]} did not finish within {timeout:.0f} s") from None
    result = Completed(
        proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-2000:]
        raise CommandError(f"{argv[0]} failed with exit status {result.returncode}: {detail}")
    return result


def spawn(argv: Sequence[str], *, log_path: Path, cwd: Path) -> int:
    """Start a long-running process (a hypervisor) in its own session and return its pid.

    Its own session keeps it alive when the daemon is killed, so a restarted daemon can adopt
    it. stdout/stderr go to ``log_path`` so a failed start can be explained.
    """
    log.info("spawn: %s", " ".join(argv))
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    # The Popen object is dropped on purpose: exit is observed through a pidfd (see
    # ProcessWatch) so that own children and re-adopted processes are handled the same way.
    # Silence Popen's "still running" ResourceWarning by marking it as already reaped by us.
    proc.returncode = 0
    return proc.pid


def cmdline_of(pid: int) -> list[str] | None:
    """The argv of a live process, or None when it does not exist (or is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if not raw:
        return None  # zombie or kernel thread
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


def is_alive(pid: int) -> bool:
    """True when ``pid`` is a running (non-zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X", "")


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send a signal; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def kill_and_reap(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL a process this daemon spawned and collect its exit status (no zombie)."""
    kill(pid)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not ours, or already collected
        if waited == pid or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.01)


async def end_child(pid: int) -> None:
    """Kill and reap a child of this daemon unless it was reaped already.

    An unreaped child's pid cannot be reused, so only then is the signal certain to reach it.
    """
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return  # collected already (or never ours): do not signal a pid that may be reused
    if waited == 0:
        await kill_and_reap(pid)


class ProcessWatch:
    """Waits for a process to exit via a pidfd; reaps it when it is our child.

    The exit status is only known for our own children; for an adopted process it is None.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd = os.pidfd_open(pid)
        self._done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(self._fd, self._on_exit)

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fd)
        os.close(self._fd)
        status: int | None = None
        try:
            waited, raw = os.waitpid(self.pid, os.WNOHANG)
            if waited == self.pid:
                status = os.waitstatus_to_exitcode(raw)
        except ChildProcessError:
            pass  # not our child: init reaps it
        if not self._done.done():
            self._done.set_result(status)

    async def wait(self) -> int | None:
        """Wait for the exit; returns the exit code (negative = signal) or None if unknown."""
        return await asyncio.shield(self._done)

    @property
    def exited(self) -> bool:
        """True once the process has exited."""
        return self._done.done()

    def close(self) -> None:
        """Stop watching without waiting (daemon shutdown)."""
        if not self._done.done():
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            os.close(self._fd)
            self._done.cancel()


def describe_exit(status: int | None) -> str:
    """A short human description of an exit code from :class:`ProcessWatch`."""
    if status is None:
        return "hypervisor exited"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"hypervisor killed by {name}"
    return f"hypervisor exited with status {status}"
