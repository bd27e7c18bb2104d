"""A first, minimal PID 1: mount the API filesystems, say `ready`, then reap children forever.

Startup imports are kept to built-in modules (os, time): under emulation every imported module
costs boot time. PID 1 must never return, so every failure is logged and the loop goes on.
"""

import os
import time

MOUNTS: tuple[tuple[str, str, str, int], ...] = (
    # (source, target, fstype, flags)
    ("proc", "/proc", "proc", 0),
    ("sysfs", "/sys", "sysfs", 0),
    ("devtmpfs", "/dev", "devtmpfs", 0),
    ("tmpfs", "/run", "tmpfs", 0),
    ("tmpfs", "/tmp", "tmpfs", 0),
)


def log(message: str) -> None:
    """Write one line to the console; never raise."""
    try:
        os.write(2, f"pideisn: {message}\n".encode())
    except OSError:
        pass


def uptime() -> float:
    """Seconds since the kernel started (CLOCK_BOOTTIME)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def mount_api_filesystems() -> None:
    """Mount /proc, /sys, /dev, /run and /tmp; a failure is logged, not fatal."""
    import ctypes  # noqa: PLC0415 - only needed here, and ctypes is slow to import

    libc = ctypes.CDLL(None, use_errno=True)
    for source, target, fstype, flags in MOUNTS:
        os.makedirs(target, exist_ok=True)
        if os.path.ismount(target):
            continue
        if libc.mount(source.encode(), target.encode(), fstype.encode(), flags, None) != 0:
            err = ctypes.get_errno()
            log(f"mount {target} ({fstype}) failed: {os.strerror(err)}")


def reap_forever() -> None:
    """Reap every child (orphans are re-parented to PID 1) and never return."""
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(3600)
        except Exception as exc:  # PID 1 must not die
            log(f"reap: {exc}")
            time.sleep(1)


def main() -> None:
    """Run as PID 1: mount, report readiness, reap."""
    try:
        mount_api_filesystems()
        log(f"ready (uptime {uptime():.2f} s)")
    except Exception as exc:
        log(f"early boot failed: {exc!r}")
    reap_forever()
