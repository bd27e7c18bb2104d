"""mount(2), umount2(2) and reboot(2), which Python's os module does not offer, via `_ctypes`.

Foreign calls are the one costly thing PID 1 keeps: there is no other honest way from the
standard library to mount the API filesystems or to power off. The `ctypes` package itself is
not imported: its set-up (`ctypes/__init__`, `ctypes._endian`, `struct`, all C types) cost
about twice what `_ctypes` alone (the extension and libffi) does at boot, so the three C types
and the function pointer class these calls need are declared here on `_ctypes`, as
`ctypes.CDLL(None, use_errno=True)` would declare them. (The hostname needs no syscall
wrapper: writing /proc/sys/kernel/hostname is the same sethostname(2) in the kernel.)
"""

from __future__ import annotations

import _ctypes
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


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _ULong(_ctypes._SimpleCData):
    _type_ = "L"


class _CharP(_ctypes._SimpleCData):
    _type_ = "z"  # char *: bytes or None (NULL)


class _Function(_ctypes.CFuncPtr):
    """A C function of this process's libc: returns int, keeps errno for get_errno()."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Libc:
    """What a function pointer needs of a library: its dlopen handle (None: this process)."""

    _handle = _ctypes.dlopen(None, os.RTLD_LOCAL)  # type: ignore[arg-type]  # NULL is valid


def _function(name: str, *argtypes: type) -> _Function:
    function = _Function((name, _Libc))  # type: ignore[arg-type]  # any object with _handle
    function.argtypes = argtypes
    return function


_mount = _function("mount", _CharP, _CharP, _CharP, _ULong, _CharP)
_umount2 = _function("umount2", _CharP, _Int)
_reboot = _function("reboot", _Int)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    """mount(2); raises OSError with the errno on failure."""
    result = _mount(
        source.encode(), target.encode(), fstype.encode(), flags, data.encode() if data else None
    )
    _check(result, f"mount {fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_umount2(target.encode(), flags), f"umount {target}")


def reboot(command: int) -> None:
    """reboot(2): RB_AUTOBOOT, RB_POWER_OFF, RB_DISABLE_CAD …; returns only on failure."""
    # The C prototype takes an int: the magic numbers above 2**31 must wrap to negative.
    value = command - (1 << 32) if command >= 1 << 31 else command
    _check(_reboot(value), "reboot")
