"""Watch a booting machine's serial console: stream it, and decide success (the ready line),
failure (kernel panic, the machine exiting first) or timeout."""

import os
import re
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

READY = re.compile(rb"pideisn: ready\b")
PANIC = re.compile(rb"Kernel panic|end Kernel panic|Attempted to kill init")
# OVMF's boot manager refusing an image under Secure Boot (bad or missing signature).
REFUSED = re.compile(rb"BdsDxe: failed to (load|start) .*: (Access Denied|Security Violation)")
TAIL_LINES = 30


@dataclass
class BootResult:
    """How a boot ended."""

    ok: bool
    reason: str
    seconds: float
    ready_line: str | None = None
    tail: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)  # lines matching `collect`
    process: subprocess.Popen[bytes] | None = None  # still running (keep_running and ready)


def watch(
    argv: Sequence[str],
    timeout: float,
    echo: TextIO | None = sys.stdout,
    ready: re.Pattern[bytes] = READY,
    *,
    keep_running: bool = False,
    collect: re.Pattern[bytes] | None = None,
) -> BootResult:
    """Start `argv` (its stdout is the serial console) and watch until ready, failure or timeout.

    The machine is stopped when the watch ends, unless it became ready and `keep_running`
    asks to keep it (then `result.process` is it: see `follow`). Console lines matching
    `collect` are returned in `result.collected`.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    errors = bytearray()
    pending = b""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    open_streams = 2
    result: BootResult | None = None
    collected: list[str] = []
    try:
        while result is None:
            left = started + timeout - time.monotonic()
            if left <= 0:
                result = BootResult(False, f"no ready line within {timeout:.0f} s", timeout)
                break
            if open_streams == 0:
                proc.wait(timeout=left)
                result = BootResult(
                    False,
                    f"the machine exited (status {proc.returncode}) before the ready line",
                    time.monotonic() - started,
                )
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    errors.extend(chunk)
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.rstrip(b"\r")
                    text = line.decode(errors="replace")
                    tail.append(text)
                    if collect is not None and collect.search(line):
                        collected.append(text)
                    if echo is not None:
                        echo.write(text + "\n")
                        echo.flush()
                    if ready.search(line):
                        result = BootResult(True, "ready", time.monotonic() - started, text)
                        break
                    if PANIC.search(line):
                        result = BootResult(False, "kernel panic", time.monotonic() - started)
                        break
                    if REFUSED.search(line):
                        result = BootResult(
                            False, "the firmware refused the image", time.monotonic() - started
                        )
                        break
                if result is not None:
                    break
    finally:
        kept = keep_running and result is not None and result.ok and proc.poll() is None
        sel.close()
        if not kept:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
    if pending:
        tail.append(pending.decode(errors="replace"))
    result.tail = list(tail)
    result.collected = collected
    if kept:
        result.process = proc
    if errors and not result.ok:
        result.tail += [f"[qemu] {line}" for line in errors.decode(errors="replace").splitlines()]
    return result


def follow(proc: subprocess.Popen[bytes], echo: TextIO | None = sys.stdout) -> int:
    """Echo the console of a machine `watch` kept running until it exits; its exit status."""
    assert proc.stdout is not None and proc.stderr is not None
    try:
        for raw in iter(proc.stdout.readline, b""):
            if echo is not None:
                echo.write(raw.decode(errors="replace").rstrip("\r\n") + "\n")
                echo.flush()
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
