"""Console logging: every line carries the uptime, so a boot log reads as a timeline."""

from __future__ import annotations

import os
import time

_fd = 2


def uptime() -> float:
    """Seconds since the kernel started (CLOCK_BOOTTIME, counts suspend too)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def set_console_fd(fd: int) -> None:
    """Send log lines to `fd` instead of stderr (PID 1 writes to /dev/console)."""
    global _fd  # noqa: PLW0603 - one console per process
    _fd = fd


def log(message: str) -> None:
    """Write one timestamped line to the console; never raise (PID 1 must not die of a log)."""
    try:
        os.write(_fd, f"[{uptime():9.3f}] pideisn: {message}\n".encode(errors="replace"))
    except OSError:
        pass


def write_raw(data: bytes) -> None:
    """Write already formatted bytes (service output) to the console; never raise."""
    try:
        os.write(_fd, data)
    except OSError:
        pass
