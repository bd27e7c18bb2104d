"""pideisn as PID 1: early boot, network, services, then the event loop until shutdown.

Boot sequence: API filesystems → signals, reaper, power button → the /usr image (in images
built with one) → hostname → network (DHCPv4, SLAAC, DHCPv6; bounded by a timeout) →
services → the one `ready` line.
PID 1 must never exit: every step's failure is logged and the boot goes on; if the main loop
itself fails, `emergency_loop` keeps reaping and still honours power-off requests.

Startup imports are what the boot pays for under emulation, so they are kept to built-in and
small modules. The services file module and the supervisor are imported the first time the
network wait is idle (see `Init.wait_network`); builds must include `DEFERRED_MODULES` in the
image. The services file itself is read from its build-time compiled form when it is current,
so `tomllib` is imported only for a file changed since the build.
"""

from __future__ import annotations

import _signal
import os
import sys
import time

from mvirt.pideisn import syscalls, usr_image
from mvirt.pideisn.cmdline import BootOptions
from mvirt.pideisn.console import log, uptime
from mvirt.pideisn.loop import Loop
from mvirt.pideisn.netconfig import NetworkConfig
from mvirt.pideisn.netlink import Netlink
from mvirt.pideisn.power_button import PowerButton
from mvirt.pideisn.prefix_pool import PrefixPool
from mvirt.pideisn.signals import Reaper, SignalDispatcher

# Set to True by type checkers only: importing `typing` would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from mvirt.pideisn.supervisor import Supervisor

# Imported once the boot is idle or the network configured (see Init.wait_network).
IDLE_SLICE = 0.05
DEFERRED_MODULES = ("mvirt.pideisn.services_file", "mvirt.pideisn.supervisor")

_NOSUID_NODEV = syscalls.MS_NOSUID | syscalls.MS_NODEV
MOUNTS: tuple[tuple[str, str, str, int, str | None], ...] = (
    # (source, target, fstype, flags, data)
    ("proc", "/proc", "proc", _NOSUID_NODEV | syscalls.MS_NOEXEC, None),
    ("sysfs", "/sys", "sysfs", _NOSUID_NODEV | syscalls.MS_NOEXEC, None),
    ("devtmpfs", "/dev", "devtmpfs", syscalls.MS_NOSUID, "mode=0755"),
    ("devpts", "/dev/pts", "devpts", syscalls.MS_NOSUID | syscalls.MS_NOEXEC, "ptmxmode=0666"),
    ("tmpfs", "/dev/shm", "tmpfs", _NOSUID_NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", _NOSUID_NODEV, "mode=0755"),
    ("tmpfs", "/tmp", "tmpfs", _NOSUID_NODEV, "mode=1777"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", _NOSUID_NODEV | syscalls.MS_NOEXEC, None),
)
# Left mounted at shutdown: the API filesystems, and the read-only /usr PID 1 runs from.
API_MOUNTS = frozenset(m[1] for m in MOUNTS) | {"/", usr_image.MOUNT_POINT, usr_image.IMAGE_MOUNT}
# Links every Linux userland expects in /dev (udev makes them elsewhere): `nft -f -` opens
# /dev/stdin, shells and other tools use /dev/fd.
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)
SERVICE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
}
PREFIX_POOL_FILE = "/run/pideisn/delegated-prefixes"
# Present only in images that keep state across boots: DHCPv4 then asks for the previous
# address first (INIT-REBOOT, RFC 2131 3.2).
STATE_DIR = "/var/lib/pideisn"
# How long the boot waits for a router once DHCPv4 is done (see NetworkConfig.router_grace).
ROUTER_GRACE = 2.0
REBOOT = "reboot"
POWER_OFF = "power off"


def mount_api_filesystems() -> None:
    """Mount /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp, cgroup2; failures are logged."""
    for source, target, fstype, flags, data in MOUNTS:
        try:
            os.makedirs(target, exist_ok=True)
            if os.path.ismount(target):
                continue
            syscalls.mount(source, target, fstype, flags, data)
        except OSError as exc:
            log(f"mount {target} ({fstype}) failed: {exc.strerror or exc}")
    make_dev_links()
    log("API filesystems mounted")


def mount_usr_image() -> None:
    """Mount the image's /usr (usr_image) when the image has one."""
    try:
        device = usr_image.mount()
    except OSError as exc:
        log(
            f"/usr: cannot mount {usr_image.IMAGE}: {exc.strerror or exc}; "
            "services whose programs live in /usr will not start"
        )
        return
    if device is not None:
        log(f"/usr mounted from {usr_image.IMAGE} ({device})")


def make_dev_links(dev: str = "/dev") -> None:
    """/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr; an existing entry is kept, failures
    are logged."""
    for name, target in DEV_LINKS:
        try:
            os.symlink(target, f"{dev}/{name}")
        except FileExistsError:
            continue
        except OSError as exc:
            log(f"link {dev}/{name} failed: {exc.strerror or exc}")


def set_hostname(options: BootOptions, etc: str = "/etc/hostname") -> str | None:
    """From mvirt.hostname= or /etc/hostname; written to /proc/sys/kernel/hostname."""
    name = options.hostname
    if name is None:
        try:
            with open(etc) as source:
                name = source.read().strip() or None
        except OSError:
            name = None
    if name:
        apply_hostname(name)
    return name


def apply_hostname(name: str) -> None:
    """sethostname(2) through procfs; logged, never fatal."""
    try:
        with open("/proc/sys/kernel/hostname", "w") as out:
            out.write(name)
        log(f"hostname {name}")
    except OSError as exc:
        log(f"setting hostname {name!r} failed: {exc}")


class Init:
    """The running PID 1: owns the loop and everything on it."""

    def __init__(self) -> None:
        self.loop = Loop()
        self.options = BootOptions([])
        self.reaper = Reaper()
        self.signals: SignalDispatcher | None = None
        self.power_button: PowerButton | None = None
        self.netlink: Netlink | None = None
        self.network: NetworkConfig | None = None
        self.supervisor: Supervisor | None = None
        self.shutdown_request: str | None = None
        self.hostname_from_cmdline = False

    def request_shutdown(self, action: str, why: str) -> None:
        """Ask the main loop to shut down (first request wins)."""
        if self.shutdown_request is None:
            log(f"{why}: {action}")
            self.shutdown_request = action

    def setup_pid1(self) -> None:
        """Signals (busybox convention), Ctrl-Alt-Del as SIGINT, reaping, power button."""
        signals = SignalDispatcher(self.loop)
        self.signals = signals
        signals.on(_signal.SIGCHLD, self.reaper.reap)
        signals.on(_signal.SIGTERM, lambda: self.request_shutdown(REBOOT, "SIGTERM"))
        signals.on(_signal.SIGUSR2, lambda: self.request_shutdown(POWER_OFF, "SIGUSR2"))
        signals.on(_signal.SIGUSR1, lambda: self.request_shutdown(POWER_OFF, "SIGUSR1"))
        signals.on(_signal.SIGINT, lambda: self.request_shutdown(REBOOT, "Ctrl-Alt-Del"))
        try:
            # With CAD disabled the kernel sends SIGINT to PID 1 instead of rebooting at once.
            syscalls.reboot(syscalls.RB_DISABLE_CAD)
        except OSError as exc:
            log(f"cannot route Ctrl-Alt-Del to init: {exc}")
        button = PowerButton(
            self.loop, lambda: self.request_shutdown(POWER_OFF, "ACPI power button")
        )
        self.power_button = button
        button.scan()
        if button.watched:
            log(f"power button: watching {', '.join(button.watched)}")

    def start_network(self) -> None:
        """Kick off DHCPv4/SLAAC/DHCPv6 on every NIC (does not wait)."""
        opts = self.options
        if not opts.network:
            log("network disabled (mvirt.net=0)")
            return
        self.netlink = Netlink()
        self.network = NetworkConfig(
            self.loop,
            self.netlink,
            prefix_pool=PrefixPool(PREFIX_POOL_FILE),
            on_hostname=self._dhcp_hostname,
            ipv4=opts.ipv4,
            ipv6=opts.ipv6,
            dhcp6=opts.dhcp6,
            state_dir=STATE_DIR if os.path.isdir(STATE_DIR) else None,
            router_grace=ROUTER_GRACE,
        )
        self.network.start()

    def _dhcp_hostname(self, name: str) -> None:
        if not self.hostname_from_cmdline:
            apply_hostname(name)

    def wait_network(self) -> tuple[ModuleType, ModuleType] | None:
        """Run the loop until the network is configured, the timeout, or a shutdown request.

        The first time no packet arrives for IDLE_SLICE (e.g. while DAD runs or a DHCP server
        takes its time), the services modules are imported and returned: their import costs
        a noticeable time under emulation, better spent while nothing else can happen.
        """
        network = self.network
        if network is None:
            return None
        modules = None
        deadline = self.loop.clock() + self.options.network_timeout
        while not network.configured() and self.shutdown_request is None:
            left = deadline - self.loop.clock()
            if left <= 0:
                break
            if not self.loop.run_once(min(left, IDLE_SLICE)) and modules is None:
                modules = load_services_module_logged()
        done = network.configured()
        if done:
            for iface in network.interfaces:
                if network.no_router(iface):
                    log(
                        f"{iface.name}: no router answered within {ROUTER_GRACE:.0f} s, "
                        "not waiting for IPv6 (solicitations go on)"
                    )
            log(f"network configured ({network.summary() or 'no addresses'})")
        else:
            network.report_pending()
            log(f"network not fully configured after {self.options.network_timeout:.0f} s")
        return modules

    def start_services(self, modules: tuple[ModuleType, ModuleType]) -> None:
        """Load the services file and start the services, waiting until all are settled."""
        services_file, supervisor_module = modules
        try:
            specs = services_file.load(self.options.services_file)
        except ValueError as exc:
            log(f"services not started: {exc}")
            self.report_unknown_options(set())
            return
        self.report_unknown_options({w for spec in specs for w in spec.cmdline_options()})
        if not specs:
            log(f"no services declared in {self.options.services_file}")
            return
        supervisor: Supervisor = supervisor_module.Supervisor(
            self.loop,
            self.reaper,
            specs,
            base_env=dict(SERVICE_ENV),
            cmdline_words=self.options.words,
        )
        self.supervisor = supervisor
        supervisor.start()
        done = self.loop.run_until(
            lambda: supervisor.all_settled() or self.shutdown_request is not None,
            self.options.services_timeout,
        )
        if not done:
            log(f"services not all ready after {self.options.services_timeout:.0f} s")

    def report_unknown_options(self, consumed: set[str]) -> None:
        """Log `mvirt.*` options that neither pideisn nor a service of the services file
        (`cmdline_arguments`, `cmdline_values`, `when_cmdline`) uses."""
        unknown = self.options.unknown_besides(consumed)
        if unknown:
            log(f"unknown mvirt.* options ignored: {', '.join(unknown)}")

    def ready_line(self) -> str:
        """`ready (uptime 3.10 s) eth0 10.0.2.15/24 …`."""
        summary = self.network.summary() if self.network is not None else ""
        return f"ready (uptime {uptime():.2f} s)" + (f" {summary}" if summary else "")

    def run(self) -> None:
        """The whole life of PID 1, up to reboot(2)."""
        step("early boot", mount_api_filesystems)
        # PID 1 duties first: whatever goes wrong later, signals and the power button work.
        step("signals", self.setup_pid1)
        step("/usr image", mount_usr_image)
        options = step("kernel command line", BootOptions.from_proc)
        if isinstance(options, BootOptions):
            self.options = options
        # Unknown mvirt.* options are reported once the services file is read: a service's
        # `cmdline_arguments` may ask for some of them (e.g. mvirt.api=tls).
        self.hostname_from_cmdline = self.options.hostname is not None
        step("hostname", lambda: set_hostname(self.options))
        step("network", self.start_network)
        modules = None
        try:
            modules = self.wait_network()
        except Exception as exc:
            log(f"network wait failed: {exc!r}")
        if modules is None:
            modules = load_services_module_logged()
        if modules is not None and self.shutdown_request is None:
            step("services", lambda: self.start_services(modules))
        else:
            self.report_unknown_options(set())
        if self.shutdown_request is None:
            log(self.ready_line())
            log(f"resident memory {resident_mib():.1f} MiB")
        if self.power_button is not None:
            self.power_button.scan()  # input devices probed late show up by now
        while self.shutdown_request is None:
            self.loop.run_once(60.0)
        self.shutdown(self.shutdown_request)

    def shutdown(self, action: str) -> None:
        """Stop services in reverse order, end the rest, sync, unmount, reboot(2)."""
        log(f"shutdown: {action}")
        supervisor = self.supervisor
        if supervisor is not None:
            step("stopping services", supervisor.stop_all)
            log("shutdown: services stopped")
        if self.network is not None:
            network = self.network
            step("network", lambda: network.close(release=True))
        step("ending remaining processes", self.end_all_processes)
        final_sync_and_unmount()
        finish(action)

    def end_all_processes(self) -> None:
        """SIGTERM to every other process, a short wait, then SIGKILL."""
        try:
            os.kill(-1, _signal.SIGTERM)
        except ProcessLookupError:
            return
        self.loop.run_until(lambda: not _other_processes(), 2.0)
        try:
            os.kill(-1, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.reaper.reap()


def resident_mib() -> float:
    """This process's resident set size (VmRSS) in MiB, 0 if unknown."""
    try:
        with open("/proc/self/status") as source:
            for line in source:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _other_processes() -> bool:
    # Kernel threads have an empty cmdline; anything else besides us is a process to end.
    me = str(os.getpid())
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit() and e != me]
    except OSError:
        return False
    for entry in entries:
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as source:
                if source.read(1):
                    return True
        except OSError:
            continue
    return False


def final_sync_and_unmount() -> None:
    """sync, unmount what is not an API filesystem (lazily), sync again."""
    os.sync()
    try:
        with open("/proc/mounts") as source:
            targets = [line.split()[1] for line in source if len(line.split()) > 1]
    except OSError:
        targets = []
    for target in reversed(targets):
        if target in API_MOUNTS or target.startswith(("/proc/", "/sys/", "/dev/")):
            continue
        try:
            syscalls.umount(target, syscalls.MNT_DETACH)
            log(f"shutdown: unmounted {target}")
        except OSError as exc:
            log(f"shutdown: unmount {target} failed: {exc.strerror or exc}")
    os.sync()
    log("shutdown: filesystems synced")


def finish(action: str) -> None:
    """reboot(2) with the right command; returns only if the kernel refused."""
    command = syscalls.RB_POWER_OFF if action == POWER_OFF else syscalls.RB_AUTOBOOT
    log(f"shutdown: {'powering off' if action == POWER_OFF else 'rebooting'}")
    try:
        syscalls.reboot(command)
    except OSError as exc:
        log(f"reboot(2) failed: {exc}")


def load_services_module() -> tuple[ModuleType, ModuleType]:
    """Import the services file module and the supervisor (not needed before the network)."""
    from mvirt.pideisn import services_file, supervisor  # noqa: PLC0415

    return services_file, supervisor


def load_services_module_logged() -> tuple[ModuleType, ModuleType] | None:
    """load_services_module, with a failure logged instead of raised."""
    try:
        return load_services_module()
    except Exception as exc:
        log(f"services support unavailable: {exc!r}")
        return None


def step(what: str, action: Callable[[], object]) -> object:
    """Run one boot step; an exception is logged and the boot goes on."""
    try:
        return action()
    except Exception as exc:
        log(f"{what} failed: {exc!r}")
        return None


def emergency_loop(init: Init | None) -> None:
    """Last resort: reap forever; SIGTERM/SIGUSR1/SIGUSR2/SIGINT or the power button still
    shut down (sync and reboot(2) directly)."""
    requested: list[str] = []
    handlers = {
        _signal.SIGTERM: REBOOT,
        _signal.SIGINT: REBOOT,
        _signal.SIGUSR1: POWER_OFF,
        _signal.SIGUSR2: POWER_OFF,
    }
    for signum, action in handlers.items():
        try:
            _signal.signal(signum, lambda _s, _f, action=action: requested.append(action))
        except (OSError, ValueError):
            pass
    try:
        _signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    log("emergency loop: reaping children; power off with the power button or SIGUSR2")
    button = init.power_button if init is not None else None
    if button is None:
        try:
            button = PowerButton(Loop(), lambda: None)
            button.scan()
        except Exception as exc:
            log(f"emergency loop: power button unavailable: {exc!r}")
    while True:
        try:
            while True:
                pid, _status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
        except ChildProcessError:
            pass
        except Exception as exc:
            log(f"emergency loop: {exc!r}")
        if button is not None and button.poll():
            requested.append(POWER_OFF)
        if requested:
            os.sync()
            finish(requested[0])
            requested.clear()
        time.sleep(0.5)


def main() -> None:
    """Run as PID 1; never returns there. Elsewhere it refuses to start."""
    if os.getpid() != 1:
        sys.stderr.write(
            "pideisn: not PID 1; it only runs as init. "
            "To run the network clients alone: pideisn dhcp IFACE\n"
        )
        sys.exit(2)
    log(f"starting (Python {sys.version.split()[0]}, uptime {uptime():.2f} s)")
    init: Init | None = None
    try:
        init = Init()
        init.run()
    except BaseException as exc:  # PID 1 must not exit, whatever happened
        log(f"main loop failed: {exc!r}")
    emergency_loop(init)
