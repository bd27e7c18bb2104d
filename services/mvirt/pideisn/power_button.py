"""The ACPI power button as the kernel reports it: KEY_POWER on an evdev input device.

A hypervisor's graceful shutdown (QEMU `system_powerdown`, cloud-hypervisor's power button)
raises an ACPI event; the kernel's button driver turns it into a key press on
/dev/input/eventN. Every event device is watched; a KEY_POWER press requests a power off.
"""

from __future__ import annotations

import os
import struct

from mvirt.pideisn.console import log
from mvirt.pideisn.loop import Loop

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

EV_KEY = 1
KEY_POWER = 116
# struct input_event on 64-bit: struct timeval (two longs), u16 type, u16 code, s32 value.
INPUT_EVENT = struct.Struct("@llHHi")


def power_pressed(data: bytes) -> bool:
    """True if any complete input_event in `data` is a KEY_POWER press."""
    for offset in range(0, len(data) - INPUT_EVENT.size + 1, INPUT_EVENT.size):
        _sec, _usec, kind, code, value = INPUT_EVENT.unpack_from(data, offset)
        if kind == EV_KEY and code == KEY_POWER and value == 1:
            return True
    return False


class PowerButton:
    """Watches /dev/input/event* and calls `on_press` on KEY_POWER."""

    def __init__(
        self, loop: Loop, on_press: Callable[[], None], directory: str = "/dev/input"
    ) -> None:
        self.loop = loop
        self.on_press = on_press
        self.directory = directory
        self._fds: dict[str, int] = {}

    def scan(self) -> None:
        """Open event devices not watched yet (devices may appear after boot starts)."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.startswith("event"))
        except OSError:
            return
        for name in names:
            if name in self._fds:
                continue
            path = f"{self.directory}/{name}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as exc:
                log(f"cannot watch {path}: {exc}")
                continue
            self._fds[name] = fd
            self._watch(fd, name)

    def _watch(self, fd: int, name: str) -> None:
        self.loop.add_reader(fd, lambda: self._read(fd, name))

    @property
    def watched(self) -> list[str]:
        """Names of the watched devices."""
        return sorted(self._fds)

    def _read(self, fd: int, name: str) -> None:
        try:
            data = os.read(fd, INPUT_EVENT.size * 64)
        except BlockingIOError:
            return
        except OSError:
            self.loop.remove_reader(fd)
            os.close(fd)
            self._fds.pop(name, None)
            return
        if power_pressed(data):
            self.on_press()

    def poll(self) -> bool:
        """Read every device once without the loop (emergency mode); True on a press."""
        pressed = False
        for fd in list(self._fds.values()):
            try:
                pressed |= power_pressed(os.read(fd, INPUT_EVENT.size * 64))
            except OSError:
                pass
        return pressed
