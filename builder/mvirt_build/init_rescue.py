"""The image's last resort, kept as text in /init next to a guarded import of PID 1's module.

When the init module cannot be imported or returns or raises, /init runs `rescue(why)`: it
prints why, then loops forever reaping children, and powers off on the ACPI power button or
SIGUSR1/SIGUSR2 (reboots on SIGTERM/SIGINT), like the init module's own emergency loop. It
uses the standard library only (built-in modules where there is one): the point is to work
when the project's own code does not. /init holds it as a string and compiles it only when it
is needed, so a normal boot pays nothing for it. The builder never calls it.
"""

import _signal
import os
import select
import struct

# ctypes (for mount(2) and reboot(2)) is imported only when used: if even that import fails,
# the loop still reaps.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

POWER_OFF = 0x4321FEDC  # reboot(2) commands
RESTART = 0x01234567
EV_KEY = 1
KEY_POWER = 116
INPUT_EVENT = struct.Struct("@llHHi")  # struct input_event on 64-bit
MS_NOSUID = 2


def say(message: str) -> None:
    """One line on the console (PID 1's stderr is /dev/console)."""
    try:
        os.write(2, f"/init: {message}\n".encode(errors="replace"))
    except OSError:
        pass


def _libc() -> "ctypes.CDLL":
    import ctypes  # noqa: PLC0415

    return ctypes.CDLL(None, use_errno=True)


def open_buttons(opened: dict[str, int]) -> None:
    """Open every /dev/input/event* not open yet (devtmpfs mounted first if need be)."""
    if not os.path.isdir("/dev/input"):
        try:
            _libc().mount(b"devtmpfs", b"/dev", b"devtmpfs", MS_NOSUID, b"mode=0755")
        except Exception as exc:
            say(f"cannot mount /dev: {exc!r}")
    try:
        names = [n for n in os.listdir("/dev/input") if n.startswith("event")]
    except OSError:
        return
    for name in names:
        if name not in opened:
            try:
                opened[name] = os.open(f"/dev/input/{name}", os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                continue


def power_pressed(fds: list[int]) -> bool:
    """True if a KEY_POWER press is waiting on any of the devices."""
    for fd in fds:
        try:
            data = os.read(fd, INPUT_EVENT.size * 64)
        except OSError:
            continue
        for offset in range(0, len(data) - INPUT_EVENT.size + 1, INPUT_EVENT.size):
            _s, _u, kind, code, value = INPUT_EVENT.unpack_from(data, offset)
            if kind == EV_KEY and code == KEY_POWER and value == 1:
                return True
    return False


def reap() -> None:
    """Collect every exited child."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def finish(command: int) -> None:
    """sync and reboot(2); returns (after saying why) only if the kernel refused."""
    say("powering off" if command == POWER_OFF else "rebooting")
    os.sync()
    try:
        import ctypes  # noqa: PLC0415

        if _libc().reboot(command) != 0:
            say(f"reboot(2) failed: {os.strerror(ctypes.get_errno())}")
    except Exception as exc:
        say(f"reboot(2) failed: {exc!r}")


def rescue(why: str) -> None:
    """Never returns: reap, and honour power-off and reboot requests."""
    say(why)
    requests: list[int] = []
    actions = (
        (_signal.SIGUSR1, POWER_OFF),
        (_signal.SIGUSR2, POWER_OFF),
        (_signal.SIGTERM, RESTART),
        (_signal.SIGINT, RESTART),
    )
    for number, command in actions:
        try:
            _signal.signal(number, lambda _n, _f, command=command: requests.append(command))
        except (OSError, ValueError):
            pass
    buttons: dict[str, int] = {}
    open_buttons(buttons)
    # Said once the signals and the power button are watched: from here on, they work.
    say("emergency loop: reaping children; power off with the power button or SIGUSR2")
    while True:
        open_buttons(buttons)
        reap()
        fds = list(buttons.values())
        if power_pressed(fds):
            requests.append(POWER_OFF)
        if requests:
            finish(requests[0])
            requests.clear()
        try:
            select.select(fds, [], [], 0.5)
        except (OSError, ValueError):
            pass
