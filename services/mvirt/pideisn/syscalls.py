"""mount(2), umount2(2) and reboot(2), which Python's os module does not offer, via ctypes.

ctypes is the one costly import PID 1 keeps: there is no other honest way from the standard
library to mount the API filesystems or to power off. (The hostname needs no syscall wrapper:
writing /proc/sys/kernel/hostname is the same sethostname(2) in the kernel.)
"""

from __future__ import annotations

import ctypes
import os

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_RDONLY = 1
MS_REMOUNT = 32
MNT_DETACH = 2

RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC
RB_HALT_SYSTEM = 0xCDEF0123
RB_DISABLE_CAD = 0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
_libc.reboot.argtypes = (ctypes.c_int,)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError with the errno on failure."""
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None
    )
    _check(result, f"mount {fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def reboot(command: int) -> None:
    """reboot(2): RB_AUTOBOOT, RB_POWER_OFF, RB_DISABLE_CAD …; returns only on failure."""
    # The C prototype takes an int: the magic numbers above 2**31 must wrap to negative.
    value = command - (1 << 32) if command >= 1 << 31 else command
    _check(_libc.reboot(value), "reboot")
