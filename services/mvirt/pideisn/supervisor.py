"""Service supervision: start in dependency order, wait for readiness, restart by policy with
backoff, prefix output onto the console, stop in reverse order (SIGTERM, then SIGKILL).

TCP and file probes are readiness.Probe. A readiness probe command (`ready = { command =
[...] }`) runs as a child process like a service, never inside PID 1: a probe may import what
PID 1 must not (a gRPC client). PID 1 does not wait for it: its exit is reaped like any child,
and it is run again PROBE_INTERVAL after each failure while the service is starting (past its
ready_timeout too, so a late "ready" is still seen). A probe that cannot be started counts as
"not ready yet" and is logged once; it never raises into the supervisor.

A probe command that has not exited PROBE_TIMEOUT after it started (or the service's
`ready.timeout`) is hung, e.g. on a connect that never completes: a loop timer kills its
process group (SIGKILL), it counts as "not ready yet" (logged once per service) and the next
run starts PROBE_INTERVAL later, without waiting for the killed one to be reaped. Only the
exit of the probe in `probe_pid` is an answer: the killed one's pid is not reused before it is
reaped, and its exit is then ignored.
"""

from __future__ import annotations

import _signal
import os

from mvirt.pideisn.console import log, write_raw
from mvirt.pideisn.loop import Loop, Timer
from mvirt.pideisn.process import DEFAULT_PATH, spawn
from mvirt.pideisn.readiness import Probe
from mvirt.pideisn.services_file import ServiceSpec
from mvirt.pideisn.signals import Reaper, describe_status

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

WAITING = "waiting"
STARTING = "starting"
RUNNING = "running"
BACKOFF = "backoff"
EXITED = "exited"
STOPPING = "stopping"
STOPPED = "stopped"

READY_POLL = 0.05
PROBE_INTERVAL = 0.5
# A probe command running longer is killed: the node's gRPC health probes take 1-3 s under
# emulation on a loaded machine (a services file can set another `ready.timeout`).
PROBE_TIMEOUT = 10.0
STABLE_AFTER = 10.0
KILL_WAIT = 2.0


class Service:
    """A declared service and its run-time state."""

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec
        self.probe = Probe(spec.name, spec.ready)
        self.state = WAITING
        self.pid: int | None = None
        self.ever_ready = False
        self.gave_up = False
        self.starts = 0
        self.started_at = 0.0
        self.first_start = 0.0
        self.delay = spec.restart_delay
        self.last_status: int | None = None
        self.timer: Timer | None = None
        self.output_fd: int | None = None
        self.buffer = b""
        self.probe_pid: int | None = None
        self.probe_timer: Timer | None = None
        self.probe_ok = False
        self.probe_after = 0.0
        self.probe_complained = False
        self.probe_timed_out = False

    @property
    def name(self) -> str:
        """The service name."""
        return self.spec.name

    @property
    def settled(self) -> bool:
        """Ready at least once, or given up on (dependents and the ready line go on)."""
        return self.ever_ready or self.gave_up


class Supervisor:
    """Runs the declared services on the loop."""

    def __init__(
        self,
        loop: Loop,
        reaper: Reaper,
        specs: list[ServiceSpec],
        *,
        base_env: dict[str, str] | None = None,
        output: Callable[[bytes], None] = write_raw,
        cmdline_words: frozenset[str] = frozenset(),
    ) -> None:
        self.loop = loop
        self.reaper = reaper
        self.services = [Service(spec) for spec in specs]
        for service in self.services:
            service.probe.watch(loop, self._poll_readiness)
        self.by_name = {s.name: s for s in self.services}
        self.base_env = base_env if base_env is not None else {"PATH": DEFAULT_PATH}
        self.output = output
        self.cmdline_words = cmdline_words
        self.stopping = False
        self.start_order: list[Service] = []
        self._poll_timer: Timer | None = None

    # -- starting --------------------------------------------------------------------------

    def start(self) -> None:
        """Start every service whose dependencies are settled (the rest follow as they are)."""
        for service in self.services:
            if service.state != WAITING or self.stopping:
                continue
            if not service.spec.wanted(self.cmdline_words):
                # when_cmdline names an option this boot does not carry: settled, not started.
                log(
                    f"{service.name}: not started (no {service.spec.when_cmdline} on the "
                    "kernel command line)"
                )
                service.state = STOPPED
                service.gave_up = True
                continue
            if service.spec.ready.problem is not None:
                # Misconfigured probe: reported, given up on; its dependents still start.
                log(f"{service.name}: not started: {service.spec.ready.problem}")
                service.state = STOPPED
                service.gave_up = True
                continue
            deps = [self.by_name[d] for d in service.spec.after]
            if all(d.settled for d in deps):
                for dep in deps:
                    if not dep.ever_ready:
                        log(f"{service.name}: starting although {dep.name} is not ready")
                self._launch(service)

    def all_settled(self) -> bool:
        """True when every service is ready or given up on."""
        return all(s.settled for s in self.services)

    def _launch(self, service: Service) -> None:
        if self.stopping:
            return
        spec = service.spec
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        env = dict(self.base_env)
        env.update(spec.environment)
        service.starts += 1
        now = self.loop.clock()
        if service.starts == 1:
            service.first_start = now
        service.probe_ok = False
        service.probe_after = 0.0
        try:
            pid = spawn(spec.argv(self.cmdline_words), env, spec.working_directory, write_fd)
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            log(f"{service.name}: {exc.strerror or exc}")
            service.last_status = 127 << 8
            self._after_exit(service, started_at=now)
            return
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        service.output_fd = read_fd
        service.buffer = b""
        self.loop.add_reader(read_fd, lambda: self._read_output(service, read_fd))
        service.pid = pid
        service.started_at = now
        service.state = STARTING
        if service not in self.start_order:  # a restart keeps its place in the order
            self.start_order.append(service)
        self.reaper.watch(pid, lambda status: self._exited(service, pid, status))
        what = "started" if service.starts == 1 else f"restarted (start {service.starts})"
        log(f"{service.name}: {what}, pid {pid}, ready when {spec.ready.describe()}")
        self._poll_readiness()

    def _poll_readiness(self) -> None:
        # Called by its timer, by a launch or by a probe's outcome: one timer chain at most.
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        pending = False
        now = self.loop.clock()
        for service in self.services:
            if service.state != STARTING:
                service.probe.close()
                continue
            if self._ready(service, now):
                service.state = RUNNING
                if not service.ever_ready:
                    service.ever_ready = True
                    log(f"{service.name}: ready ({now - service.first_start:.2f} s)")
                else:
                    log(f"{service.name}: ready again")
                continue
            if not service.settled and now - service.first_start > service.spec.ready_timeout:
                service.gave_up = True
                log(f"{service.name}: not ready after {service.spec.ready_timeout:.0f} s")
            pending = True
        self.start()
        if pending and self._poll_timer is None:
            self._poll_timer = self.loop.call_later(READY_POLL, self._poll_readiness)

    def _ready(self, service: Service, now: float) -> bool:
        """One readiness check, never blocking or raising (see readiness.Probe)."""
        ready = service.spec.ready
        if ready.command is None:
            return service.probe.ready(now)
        if service.probe_ok:
            return True
        if service.probe_pid is None and now >= service.probe_after:
            self._start_probe(service, now)
        return False

    def _start_probe(self, service: Service, now: float) -> None:
        """Start the probe command in its own session; its exit status is the answer.

        Anything that goes wrong counts as "not ready yet", is logged once, and is retried
        after PROBE_INTERVAL: a probe never raises into the supervisor.
        """
        spec = service.spec
        command = spec.ready.command
        assert command is not None
        service.probe_after = now + PROBE_INTERVAL
        env = dict(self.base_env)
        env.update(spec.environment)
        try:
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        except Exception as exc:
            self._probe_failed(service, exc)
            return
        try:
            pid = spawn(command, env, spec.working_directory, write_fd)
        except Exception as exc:
            os.close(read_fd)
            self._probe_failed(service, exc)
            return
        finally:
            os.close(write_fd)
        service.probe_pid = pid
        self.reaper.watch(pid, lambda status: self._probe_exited(service, pid, status))
        timeout = spec.ready.timeout if spec.ready.timeout is not None else PROBE_TIMEOUT
        service.probe_timer = self.loop.call_later(
            timeout, lambda: self._probe_hung(service, pid, timeout)
        )
        try:
            self._follow_output(f"{service.name} (ready)".encode(), read_fd)
        except Exception as exc:
            os.close(read_fd)
            self._probe_failed(service, exc)

    def _probe_failed(self, service: Service, exc: Exception) -> None:
        if not service.probe_complained:
            service.probe_complained = True
            what = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            log(f"{service.name}: readiness probe {service.spec.ready.describe()} failed: {what}")

    def _probe_hung(self, service: Service, pid: int, timeout: float) -> None:
        """The probe `pid` has run for `timeout` s: killed, "not ready yet", run again later."""
        if service.probe_pid != pid:
            return
        service.probe_timer = None
        _kill_group(pid, _signal.SIGKILL)
        # Its exit, reaped later, is no answer: _probe_exited ignores a pid that is not
        # probe_pid (and the pid cannot be reused before it is reaped).
        service.probe_pid = None
        service.probe_after = self.loop.clock() + PROBE_INTERVAL
        if not service.probe_timed_out:
            service.probe_timed_out = True
            log(
                f"{service.name}: readiness probe {service.spec.ready.describe()} timed out "
                f"after {timeout:g} s (killed; it runs again)"
            )

    def _probe_exited(self, service: Service, pid: int, status: int) -> None:
        if service.probe_pid != pid:
            return
        service.probe_pid = None
        self._cancel_probe_timer(service)
        if service.state != STARTING:
            return
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            service.probe_ok = True
        else:
            service.probe_after = self.loop.clock() + PROBE_INTERVAL
        self._poll_readiness()

    def _end_probe(self, service: Service) -> None:
        self._cancel_probe_timer(service)
        if service.probe_pid is not None:
            _kill_group(service.probe_pid, _signal.SIGKILL)

    @staticmethod
    def _cancel_probe_timer(service: Service) -> None:
        if service.probe_timer is not None:
            service.probe_timer.cancel()
            service.probe_timer = None

    # -- output ----------------------------------------------------------------------------

    def _follow_output(self, label: bytes, fd: int) -> None:
        """Prefix the lines of a helper process (a probe) with `label` until end of file."""
        os.set_blocking(fd, False)
        pending = [b""]

        def readable() -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                if pending[0]:
                    self.output(label + b" | " + pending[0] + b"\n")
                self.loop.remove_reader(fd)
                os.close(fd)
                return
            lines = (pending[0] + data).split(b"\n")
            pending[0] = lines.pop()[-4096:]
            for line in lines:
                self.output(label + b" | " + line.rstrip(b"\r") + b"\n")

        self.loop.add_reader(fd, readable)

    def _read_output(self, service: Service, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if service.buffer:
                self._emit(service, service.buffer)
                service.buffer = b""
            self.loop.remove_reader(fd)
            os.close(fd)
            if service.output_fd == fd:
                service.output_fd = None
            return
        lines = (service.buffer + data).split(b"\n")
        service.buffer = lines.pop()
        if len(service.buffer) > 4096:  # a service writing without newlines
            lines.append(service.buffer)
            service.buffer = b""
        for line in lines:
            self._emit(service, line)

    def _emit(self, service: Service, line: bytes) -> None:
        self.output(service.name.encode() + b" | " + line.rstrip(b"\r") + b"\n")

    # -- exits and restarts ----------------------------------------------------------------

    def _exited(self, service: Service, pid: int, status: int) -> None:
        if service.pid != pid:
            return
        service.pid = None
        service.last_status = status
        self._end_probe(service)
        if service.state == STOPPING or self.stopping:
            service.state = STOPPED
            log(f"{service.name}: stopped ({describe_status(status)})")
            return
        log(f"{service.name}: exited ({describe_status(status)})")
        self._after_exit(service, started_at=service.started_at)

    def _after_exit(self, service: Service, started_at: float) -> None:
        status = service.last_status or 0
        failed = not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0)
        policy = service.spec.restart
        if self.stopping or policy == "never" or (policy == "on-failure" and not failed):
            service.state = EXITED
            if not service.ever_ready:
                service.gave_up = True
            self.start()
            return
        if self.loop.clock() - started_at >= STABLE_AFTER:
            service.delay = service.spec.restart_delay
        delay = service.delay
        service.delay = min(max(delay * 2, 0.1), service.spec.restart_delay_max)
        service.state = BACKOFF
        log(f"{service.name}: restarting in {delay:.1f} s")
        service.timer = self.loop.call_later(delay, lambda: self._restart(service))

    def _restart(self, service: Service) -> None:
        service.timer = None
        if service.state == BACKOFF and not self.stopping:
            self._launch(service)

    # -- stopping --------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every service in reverse start order: SIGTERM, wait, SIGKILL."""
        self.stopping = True
        for service in self.services:
            service.probe.close()
            self._end_probe(service)
            if service.timer is not None:
                service.timer.cancel()
                service.timer = None
        for service in reversed(self.start_order):
            self.stop(service)

    def stop(self, service: Service) -> None:
        """Stop one service (its whole process group) and wait for it."""
        pid = service.pid
        if pid is None:
            return
        service.state = STOPPING
        log(f"{service.name}: stopping (SIGTERM, {service.spec.stop_timeout:.0f} s)")
        _kill_group(pid, _signal.SIGTERM)
        if not self.loop.run_until(lambda: service.pid is None, service.spec.stop_timeout):
            log(f"{service.name}: still running, SIGKILL")
            _kill_group(pid, _signal.SIGKILL)
            self.loop.run_until(lambda: service.pid is None, KILL_WAIT)
        if service.output_fd is not None:
            # Collect what it wrote last, then stop reading.
            fd = service.output_fd
            self._read_output(service, fd)
            if service.output_fd is not None:
                self.loop.remove_reader(fd)
                os.close(fd)
                service.output_fd = None


def _kill_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)
