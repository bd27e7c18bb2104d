"""The one way mvirt-zfs runs a program (``zfs``, ``zpool``, ``qemu-img``): an argument list,
never a shell, output captured, a failure turned into one readable :class:`CommandError`.

Every call is a coroutine; cancelling it kills the child and reaps it, so a cancelled import
never leaves a converter running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger("mvirt.zfs.process")


class CommandError(Exception):
    """A program exited non-zero; ``reason`` is its last line of error output."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, stdout: str = "") -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        self.reason = lines[-1] if lines else f"exit status {returncode}"
        super().__init__(f"{argv[0]} {' '.join(argv[1:3])}: {self.reason}")


@dataclass(frozen=True)
class CommandResult:
    """What a finished program printed."""

    stdout: str
    stderr: str


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def run(argv: Sequence[str]) -> CommandResult:
    """Runs ``argv`` to completion; raises :class:`CommandError` on a non-zero exit."""
    log.debug("run", extra={"argv": list(argv)})
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    finally:
        await _reap(proc)
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode or -1, stderr, stdout)
    return CommandResult(stdout, stderr)


async def run_pipeline(producer: Sequence[str], consumer: Sequence[str]) -> None:
    """Runs ``producer | consumer`` (e.g. ``zfs send | zfs receive``) without a shell; raises
    :class:`CommandError` for the first side that failed."""
    log.debug("pipeline", extra={"producer": list(producer), "consumer": list(consumer)})
    read_fd, write_fd = os.pipe()
    try:
        first = await asyncio.create_subprocess_exec(
            *producer,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            second = await asyncio.create_subprocess_exec(
                *consumer,
                stdin=read_fd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except BaseException:
            await _reap(first)
            raise
    finally:
        os.close(read_fd)
        os.close(write_fd)
    try:
        (_, err1), (_, err2) = await asyncio.gather(first.communicate(), second.communicate())
    finally:
        await _reap(first)
        await _reap(second)
    if first.returncode != 0:
        raise CommandError(producer, first.returncode or -1, err1.decode(errors="replace"))
    if second.returncode != 0:
        raise CommandError(consumer, second.returncode or -1, err2.decode(errors="replace"))


async def run_with_progress(argv: Sequence[str], on_progress: Callable[[str], None]) -> None:
    """Runs ``argv`` and hands every piece of its standard output (split at ``\\r`` and
    ``\\n``, as progress meters print) to ``on_progress``."""
    log.debug("run", extra={"argv": list(argv)})
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        errors = asyncio.create_task(proc.stderr.read())
        pending = b""
        while chunk := await proc.stdout.read(4096):
            pending += chunk
            *pieces, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for piece in pieces:
                if piece.strip():
                    on_progress(piece.decode(errors="replace"))
        err = await errors
        await proc.wait()
    finally:
        await _reap(proc)
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode or -1, err.decode(errors="replace"))
