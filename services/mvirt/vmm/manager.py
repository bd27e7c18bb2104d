"""The VM manager: lifecycle, hot-plug, consoles, events and recovery, above one hypervisor
backend and the store. The gRPC servicer is a thin layer over this class.

Concurrency: every mutation of one VM holds that VM's lock, except KillVm, which must be able
to cut short a StopVm that waits forever or a StartVm still waiting for its hypervisor. A
monitor task per running VM notices the hypervisor's exit and records it (state STOPPED, the
reason kept); operations that end a VM wait for that monitor instead of writing the state
themselves, so each exit is recorded once. State and config are written separately, so an
operation holding an older record never undoes another one's write.

Start and stop run as tasks owned by the manager, not by the RPC that asked for them: a client
that goes away (cancel, deadline) cancels a start, which then kills and reaps its hypervisor
and records STOPPED with the reason; a stop carries on and still kills after its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mvirt.daemon.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
)
from mvirt.vmm import cloudinit
from mvirt.vmm.backend import (
    DiskSpec,
    Hypervisor,
    HypervisorError,
    HypervisorMissingError,
    NicSpec,
    VmPaths,
    VmSpec,
    owns_process,
)
from mvirt.vmm.console import ConsoleHub, Viewer
from mvirt.vmm.model import BootMode, VmConfig, VmEventType, VmRecord, VmState
from mvirt.vmm.path_policy import DEFAULT_IMAGE_ROOTS, PathPolicy, check_text, shown
from mvirt.vmm.process import ProcessWatch, cmdline_of, describe_exit, end_child, kill
from mvirt.vmm.serial_log import DEFAULT_MAX_BYTES, LogRotator
from mvirt.vmm.store import NameTakenError, VmStore
from mvirt.vmm.validation import (
    HostLimits,
    check_config,
    check_disk,
    check_name,
    check_unique_disks,
    check_unique_macs,
    check_vhost,
)

log = logging.getLogger("mvirt.vmm.manager")

T = TypeVar("T")

AUDIT_LEVEL = 4  # mvirt.log.LogLevel.AUDIT
# Unix sockets carry at most 107 bytes of path; the VM folder adds "vms/<uuid>/control.sock".
_SOCKET_SUFFIX_LEN = len("/vms/") + 36 + len("/control.sock")
MAX_SOCKET_PATH = 107


class AuditLog(Protocol):
    """What the manager needs from the shared audit client."""

    def log(self, level: int, message: str, related_ids: Iterable[str] = ()) -> str:
        """Record one audit entry without blocking."""
        ...


@dataclass(frozen=True)
class VmEvent:
    """One WatchVms event."""

    vm_id: str
    type: VmEventType
    timestamp: int
    vm: VmRecord | None


WATCH_QUEUE = 256
"""Events held for one WatchVms client; a client that falls this far behind is dropped."""


class Subscription:
    """One WatchVms client's bounded queue of events."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[VmEvent | None] = asyncio.Queue(WATCH_QUEUE)
        self.overflowed = False

    def push(self, event: VmEvent | None) -> bool:
        """Queue an event; False (and marked overflowed) when the client fell too far behind."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True


@dataclass
class Runtime:
    """What the daemon holds for one running VM."""

    pid: int
    watch: ProcessWatch
    hub: ConsoleHub
    backend: Hypervisor
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    monitor: asyncio.Task[None] | None = None


@dataclass
class Starting:
    """A start in progress: its task, the hypervisor pid once spawned, why it was ended."""

    task: asyncio.Task[VmRecord] | None = None
    pid: int | None = None
    reason: str | None = None


def disk_object_id(path: str) -> str:
    """The audit object id of a disk: log ids start with a letter or digit, paths with '/'."""
    return f"disk:{path}"


def _related(vm: VmRecord) -> list[str]:
    ids = [vm.id]
    ids += [disk_object_id(d.path) for d in vm.config.disks]
    ids += [n.mac for n in vm.config.nics]
    return ids


def _read_tail(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read()
    except FileNotFoundError:
        return b""


SERIAL_LOG_KEEP = 256 * 1024
MAX_CONSOLE_VIEWERS = 16


def _trim_log(path: Path, keep: int) -> None:
    """Keep only the last ``keep`` bytes of a log that only grows (done while nobody writes)."""
    try:
        if path.stat().st_size <= 4 * keep:
            return
    except FileNotFoundError:
        return
    tail = _read_tail(path, keep)
    tmp = path.with_suffix(".trim")
    tmp.write_bytes(tail)
    tmp.replace(path)


def _backend_of(pid: int | None) -> str | None:
    """The backend a hypervisor process belongs to, from its command line (for VMs stored
    before the backend was recorded)."""
    cmdline = cmdline_of(pid) if pid is not None else None
    if cmdline is None:
        return None
    if "-qmp" in cmdline:
        return "qemu"
    if "--api-socket" in cmdline:
        return "cloud-hypervisor"
    return None


class VmManager:
    """All VMs of one daemon."""

    def __init__(
        self,
        data_dir: Path,
        hypervisor: Hypervisor,
        audit: AuditLog,
        limits: HostLimits | None = None,
        backends: Mapping[str, Hypervisor] | None = None,
        image_roots: Iterable[str] = DEFAULT_IMAGE_ROOTS,
        serial_log_size: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if len(str(data_dir.resolve())) + _SOCKET_SUFFIX_LEN > MAX_SOCKET_PATH:
            raise InvalidArgumentError(
                f"data dir {data_dir} is too long for the VMs' unix sockets (at most "
                f"{MAX_SOCKET_PATH - _SOCKET_SUFFIX_LEN} characters); use a shorter --data-dir"
            )
        self.data_dir = data_dir.resolve()
        self.vms_dir = self.data_dir / "vms"
        self.vms_dir.mkdir(parents=True, exist_ok=True)
        self.store = VmStore(self.data_dir / "vmm.db")
        self.hypervisor = hypervisor
        # Every backend this daemon can drive, by name: VMs started by a daemon with another
        # --hypervisor keep their own backend (new starts use ``hypervisor``).
        self.backends: dict[str, Hypervisor] = {**(backends or {}), hypervisor.name: hypervisor}
        self.audit = audit
        self.limits = limits or HostLimits.detect()
        self.policy = PathPolicy.create(image_roots, self.data_dir)
        self.serial_log_size = serial_log_size
        self._locks: dict[str, asyncio.Lock] = {}
        self._runtimes: dict[str, Runtime] = {}
        self._starting: dict[str, Starting] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchers: set[Subscription] = set()

    # -- helpers ---------------------------------------------------------------------------

    def paths(self, vm_id: str) -> VmPaths:
        """The folder of one VM."""
        return VmPaths(self.vms_dir / vm_id)

    def _lock(self, vm_id: str) -> asyncio.Lock:
        return self._locks.setdefault(vm_id, asyncio.Lock())

    def _backend(self, vm: VmRecord) -> Hypervisor:
        """The backend that runs ``vm`` (the daemon's own for a VM never started)."""
        name = vm.hypervisor or self.hypervisor.name
        backend = self.backends.get(name)
        if backend is None:
            raise FailedPreconditionError(
                f"VM {vm.id} runs on {name}, which this mvirt-vmm cannot drive"
            )
        return backend

    async def _owned(self, coro: Coroutine[Any, Any, T], *, cancel_with_caller: bool) -> T:
        """Run ``coro`` as a task of the manager; the caller only waits for it.

        When the caller is cancelled (the client went away), the task is cancelled too if
        ``cancel_with_caller``, else it runs to its end.
        """
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if cancel_with_caller:
                task.cancel()
            raise

    def get(self, ref: str) -> VmRecord:
        """A VM by id (or, for convenience, by name); NOT_FOUND otherwise."""
        if not ref:
            raise InvalidArgumentError("id is empty: give a VM id")
        check_text("id", ref)
        vm = self.store.get(ref) or self.store.get_by_name(ref)
        if vm is None:
            raise NotFoundError(f"VM {shown(ref)} does not exist; `mvirt list` shows the VMs")
        return vm

    def list(self) -> list[VmRecord]:
        """Every VM."""
        return self.store.list()

    def allocated(self) -> tuple[int, int]:
        """(vcpus, memory MiB) of the VMs that are not stopped."""
        running = [vm for vm in self.store.list() if vm.state != VmState.STOPPED]
        return sum(vm.config.vcpus for vm in running), sum(vm.config.memory_mb for vm in running)

    def _emit(self, vm_id: str, kind: VmEventType, vm: VmRecord | None) -> None:
        # Events never carry user_data: it may be large and secret, and watchers are many.
        if vm is not None and vm.config.user_data is not None:
            vm = replace(vm, config=replace(vm.config, user_data=None))
        event = VmEvent(vm_id, kind, int(time.time()), vm)
        for subscription in list(self._watchers):
            if not subscription.push(event):
                self._watchers.discard(subscription)
                log.warning("dropped a WatchVms client that fell %d events behind", WATCH_QUEUE)

    def subscribe(self) -> Subscription:
        """A bounded queue that receives every event from now on (None when the daemon
        stops); when it overflows, the subscription is dropped and marked ``overflowed``."""
        subscription = Subscription()
        self._watchers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering events to ``subscription``."""
        self._watchers.discard(subscription)

    def _audit(self, message: str, vm: VmRecord, *extra: str) -> None:
        self.audit.log(AUDIT_LEVEL, message, [*_related(vm), *extra])

    def _spec(self, vm: VmRecord) -> VmSpec:
        config = vm.config
        seed = self.paths(vm.id).seed_iso
        return VmSpec(
            id=vm.id,
            vcpus=config.vcpus,
            memory_mb=config.memory_mb,
            boot_kernel=config.boot_mode == BootMode.KERNEL,
            kernel=config.kernel,
            initramfs=config.initramfs,
            cmdline=config.cmdline,
            disks=config.disks,
            nics=config.nics,
            seed_iso=str(seed) if config.user_data is not None else None,
            nested_virt=config.nested_virt,
        )

    def _write_seed(self, vm: VmRecord) -> None:
        if vm.config.user_data is None:
            return
        cloudinit.write_seed(
            self.paths(vm.id).seed_iso,
            user_data=vm.config.user_data,
            vm_id=vm.id,
            hostname=vm.name or vm.id,
            macs=[n.mac for n in vm.config.nics],
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def create(self, name: str | None, config: VmConfig) -> VmRecord:
        """Validate, store (STOPPED), write the cloud-init seed; emits CREATED."""
        if name is not None:
            check_name(name)
            if self.store.get_by_name(name) is not None:
                raise AlreadyExistsError(f"a VM named {name!r} exists already; pick another name")
        config = check_config(config, self.limits, self.policy)
        vm = VmRecord(
            id=str(uuid.uuid4()),
            name=name,
            state=VmState.STOPPED,
            config=config,
            created_at=int(time.time()),
        )
        folder = self.paths(vm.id).root
        folder.mkdir(parents=True)
        try:
            self._write_seed(vm)
            self.store.insert(vm)
        except NameTakenError:
            shutil.rmtree(folder, ignore_errors=True)
            raise AlreadyExistsError(
                f"a VM named {name!r} exists already; pick another name"
            ) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._audit(f"VM {vm.name or vm.id} created", vm)
        self._emit(vm.id, VmEventType.CREATED, vm)
        return vm

    async def start(self, ref: str) -> VmRecord:
        """STOPPED → STARTING → RUNNING; the monitor records the exit later.

        Runs as a task of the manager that is cancelled with the caller (see module docs).
        """
        vm = self.get(ref)
        return await self._owned(self._start(vm.id, ref), cancel_with_caller=True)

    async def _start(self, vm_id: str, ref: str) -> VmRecord:
        async with self._lock(vm_id):
            vm = self.get(vm_id)
            if vm.state != VmState.STOPPED:
                raise FailedPreconditionError(f"VM {shown(ref)} is {vm.state.name}, not STOPPED")
            backend = self.hypervisor
            vm = self.store.set_state(
                vm, VmState.STARTING, stop_reason=None, hypervisor=backend.name
            )
            starting = Starting(task=asyncio.current_task())
            self._starting[vm.id] = starting
            try:
                return await self._start_locked(vm, ref, backend, starting)
            finally:
                self._starting.pop(vm.id, None)

    async def _start_locked(
        self, vm: VmRecord, ref: str, backend: Hypervisor, starting: Starting
    ) -> VmRecord:
        paths = self.paths(vm.id)
        paths.root.mkdir(parents=True, exist_ok=True)
        _trim_log(paths.serial_log, keep=SERIAL_LOG_KEEP)
        try:
            # Files may have vanished or moved since CreateVm, and the daemon may run with other
            # image roots now: say which path is wrong instead of failing late.
            check_config(vm.config, self.limits, self.policy)
            self._write_seed(vm)
            spawned = vm

            def record_pid(pid: int) -> None:
                starting.pid = pid
                self.store.set_state(spawned, VmState.STARTING, pid=pid)

            pid = await backend.start(self._spec(vm), paths, on_spawn=record_pid)
        except asyncio.CancelledError:
            reason = starting.reason or "start cancelled: the client went away before it ended"
            await self._abort_start(vm, backend, starting, reason)
            if starting.reason is not None:  # cancelled by KillVm, not by the caller
                raise FailedPreconditionError(f"VM {shown(ref)} did not start: {reason}") from None
            raise
        except (HypervisorError, InvalidArgumentError, OSError) as exc:
            reason = starting.reason or f"start failed: {exc}"
            await self._abort_start(vm, backend, starting, reason)
            if starting.reason is not None:
                raise FailedPreconditionError(f"VM {shown(ref)} did not start: {reason}") from None
            if isinstance(exc, HypervisorMissingError):
                # This host lacks something (binary, KVM, firmware): retrying cannot help.
                raise FailedPreconditionError(f"VM {shown(ref)} cannot start here: {exc}") from None
            raise FailedPreconditionError(f"VM {shown(ref)} could not start: {exc}") from None
        vm = self.store.set_state(vm, VmState.RUNNING, started_at=int(time.time()), pid=pid)
        self._track(vm, pid, backlog=b"", backend=backend)
        self._audit(f"VM {vm.name or vm.id} started (pid {pid})", vm)
        self._emit(vm.id, VmEventType.STARTED, vm)
        return vm

    async def _abort_start(
        self, vm: VmRecord, backend: Hypervisor, starting: Starting, reason: str
    ) -> None:
        """A start that did not end RUNNING: no hypervisor left behind, STOPPED with why."""
        if starting.pid is not None:
            await end_child(starting.pid)
        await backend.forget(vm.id)
        vm = self.store.set_state(vm, VmState.STOPPED, pid=None, stop_reason=reason)
        self._audit(f"VM {vm.name or vm.id} {reason}", vm)

    def _track(self, vm: VmRecord, pid: int, backlog: bytes, backend: Hypervisor) -> None:
        watch = ProcessWatch(pid)  # first: raises ProcessLookupError when the pid is gone
        paths = self.paths(vm.id)
        hub = ConsoleHub(
            paths.serial_socket, backlog, LogRotator(paths.serial_log, self.serial_log_size)
        )
        hub.start()
        runtime = Runtime(pid=pid, watch=watch, hub=hub, backend=backend)
        runtime.monitor = asyncio.create_task(self._monitor(vm.id, runtime), name=f"vm {vm.id}")
        self._runtimes[vm.id] = runtime

    async def _monitor(self, vm_id: str, runtime: Runtime) -> None:
        status = await runtime.watch.wait()
        reason = runtime.reason or ("guest powered off" if status == 0 else describe_exit(status))
        try:
            await runtime.backend.forget(vm_id)
            vm = self.store.get(vm_id)
            if vm is not None:
                vm = self.store.set_state(vm, VmState.STOPPED, pid=None, stop_reason=reason)
                self._audit(f"VM {vm.name or vm.id} stopped: {reason}", vm)
                self._emit(vm_id, VmEventType.STOPPED, vm)
        finally:
            # Whatever happened above, callers waiting for the exit must not hang.
            self._runtimes.pop(vm_id, None)
            runtime.finished.set()
            await runtime.hub.close()

    def _runtime(self, vm: VmRecord, ref: str) -> Runtime:
        runtime = self._runtimes.get(vm.id)
        if runtime is None or vm.state == VmState.STOPPED:
            raise FailedPreconditionError(f"VM {shown(ref)} is not running")
        return runtime

    async def stop(self, ref: str, timeout: float) -> VmRecord:
        """Press the power button, wait up to ``timeout`` s (0 = forever), then kill.

        Runs as a task of the manager that outlives the caller: the timeout is kept even when
        the client goes away.
        """
        if timeout < 0:
            raise InvalidArgumentError("timeout_seconds must not be negative (0 waits forever)")
        vm = self.get(ref)
        return await self._owned(self._stop(vm.id, ref, timeout), cancel_with_caller=False)

    async def _stop(self, vm_id: str, ref: str, timeout: float) -> VmRecord:
        async with self._lock(vm_id):
            vm = self.get(vm_id)
            if vm.state != VmState.RUNNING:
                raise FailedPreconditionError(f"VM {shown(ref)} is {vm.state.name}, not RUNNING")
            runtime = self._runtime(vm, ref)
            self.store.set_state(vm, VmState.STOPPING)
            self._audit(f"VM {vm.name or vm.id} stopping (power button, timeout {timeout:g} s)", vm)
            runtime.reason = "stopped by request (power button)"
            try:
                await runtime.backend.power_button(vm.id)
            except HypervisorError as exc:
                log.warning("power button on VM %s failed: %s; killing it", vm.id, exc)
                timeout = 0.001
            try:
                await asyncio.wait_for(runtime.finished.wait(), timeout or None)
            except TimeoutError:
                runtime.reason = f"killed after the stop timeout of {timeout:g} s"
                kill(runtime.pid)
                await runtime.finished.wait()
            return self.get(vm.id)

    async def kill(self, ref: str) -> VmRecord:
        """SIGKILL the hypervisor and wait until its exit is recorded.

        Works in every state that has (or is about to have) a hypervisor process: RUNNING,
        STOPPING, and STARTING, where it ends the start.
        """
        vm = self.get(ref)
        starting = self._starting.get(vm.id)
        if vm.state == VmState.STARTING and starting is not None and starting.task is not None:
            # The start records the end (STOPPED, "killed by request") and audits it.
            starting.reason = "killed by request"
            self._audit(f"VM {vm.name or vm.id} killed", vm)
            if starting.pid is not None:
                kill(starting.pid)
            else:
                starting.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(starting.task)
            return self.get(vm.id)
        runtime = self._runtime(vm, ref)
        runtime.reason = "killed by request"
        self._audit(f"VM {vm.name or vm.id} killed", vm)
        kill(runtime.pid)
        await runtime.finished.wait()
        return self.get(vm.id)

    async def delete(self, ref: str) -> None:
        """Remove a stopped VM, its folder and its row; emits DELETED."""
        vm = self.get(ref)
        async with self._lock(vm.id):
            vm = self.get(vm.id)
            if vm.state != VmState.STOPPED:
                raise FailedPreconditionError(
                    f"VM {shown(ref)} is {vm.state.name}: stop or kill it before deleting it"
                )
            self.store.delete(vm.id)
            shutil.rmtree(self.paths(vm.id).root, ignore_errors=True)
            self._locks.pop(vm.id, None)
            self._audit(f"VM {vm.name or vm.id} deleted", vm)
            self._emit(vm.id, VmEventType.DELETED, vm)

    # -- hot-plug --------------------------------------------------------------------------

    def _spellings(self, path: str) -> set[str]:
        """``path`` as given and as the policy would have stored it (links resolved)."""
        check_text("path", path)
        spellings = {path}
        with contextlib.suppress(InvalidArgumentError):
            spellings.add(self.policy.check("path", path))
        return spellings

    def _set_config(self, vm: VmRecord, config: VmConfig) -> VmRecord:
        """Write only the config: the state may have changed while the hypervisor was asked
        (the VM exited meanwhile), and that newer state must stay."""
        stored = self.store.set_config(vm.id, config)
        return stored if stored is not None else replace(vm, config=config)

    async def _hotplug_target(self, ref: str) -> VmRecord:
        vm = self.get(ref)
        if vm.state in (VmState.STARTING, VmState.STOPPING):
            raise FailedPreconditionError(
                f"VM {shown(ref)} is {vm.state.name}; retry when it settled"
            )
        return vm

    async def attach_disk(self, ref: str, disk: DiskSpec) -> VmRecord:
        """Add a disk (hot-plugged when running), persisted in the config."""
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            disk = check_disk("disk", disk, self.policy)
            if any(d.path == disk.path for d in vm.config.disks):
                raise AlreadyExistsError(
                    f"disk {shown(disk.path)} is attached to VM {shown(ref)} already"
                )
            check_unique_disks([*vm.config.disks, disk])
            if vm.state == VmState.RUNNING:
                try:
                    await self._backend(vm).attach_disk(vm.id, disk)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-plug of {shown(disk.path)} failed: {exc}"
                    ) from None
            vm = self._set_config(vm, vm.config.with_disks((*vm.config.disks, disk)))
            self._audit(f"disk {disk.path} attached to VM {vm.name or vm.id}", vm)
            return vm

    async def detach_disk(self, ref: str, path: str) -> VmRecord:
        """Remove a disk by path (hot-unplugged when running)."""
        if not path:
            raise InvalidArgumentError("path is empty: give the path of an attached disk")
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            disk = next((d for d in vm.config.disks if d.path in self._spellings(path)), None)
            if disk is None:
                raise NotFoundError(f"disk {shown(path)} is not attached to VM {shown(ref)}")
            if vm.state == VmState.RUNNING:
                try:
                    await self._backend(vm).detach_disk(vm.id, disk)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-unplug of {shown(path)} failed: {exc}"
                    ) from None
            vm = self._set_config(
                vm, vm.config.with_disks(tuple(d for d in vm.config.disks if d != disk))
            )
            self._audit(
                f"disk {path} detached from VM {vm.name or vm.id}", vm, disk_object_id(path)
            )
            return vm

    async def attach_nic(self, ref: str, nic: NicSpec) -> VmRecord:
        """Add a NIC (hot-plugged when running), persisted in the config."""
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            if any(n.mac == nic.mac for n in vm.config.nics):
                raise AlreadyExistsError(
                    f"a NIC with MAC {nic.mac} is attached to VM {shown(ref)} already"
                )
            nic = check_vhost("nic", nic, self.policy)
            check_unique_macs([*vm.config.nics, nic])
            if vm.state == VmState.RUNNING:
                try:
                    await self._backend(vm).attach_nic(vm.id, nic)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-plug of NIC {nic.mac} failed: {exc}"
                    ) from None
            vm = self._set_config(vm, vm.config.with_nics((*vm.config.nics, nic)))
            self._audit(f"NIC {nic.mac} attached to VM {vm.name or vm.id}", vm)
            return vm

    async def detach_nic(self, ref: str, mac: str) -> VmRecord:
        """Remove a NIC by MAC (hot-unplugged when running)."""
        if not mac:
            raise InvalidArgumentError("mac is empty: give the MAC of an attached NIC")
        check_text("mac", mac)
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            nic = next((n for n in vm.config.nics if n.mac == mac.lower()), None)
            if nic is None:
                raise NotFoundError(f"no NIC with MAC {shown(mac)} is attached to VM {shown(ref)}")
            if vm.state == VmState.RUNNING:
                try:
                    await self._backend(vm).detach_nic(vm.id, nic)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-unplug of NIC {nic.mac} failed: {exc}"
                    ) from None
            vm = self._set_config(
                vm, vm.config.with_nics(tuple(n for n in vm.config.nics if n != nic))
            )
            self._audit(f"NIC {nic.mac} detached from VM {vm.name or vm.id}", vm, nic.mac)
            return vm

    # -- console ---------------------------------------------------------------------------

    def console(self, ref: str) -> tuple[ConsoleHub, Viewer]:
        """Attach a viewer to a running VM's serial console."""
        vm = self.get(ref)
        runtime = self._runtime(vm, ref)
        if runtime.hub.viewer_count >= MAX_CONSOLE_VIEWERS:
            raise ResourceExhaustedError(
                f"VM {shown(ref)} has {MAX_CONSOLE_VIEWERS} console viewers already; close one"
            )
        return runtime.hub, runtime.hub.attach()

    # -- daemon start and stop -------------------------------------------------------------

    async def recover(self) -> None:
        """Re-adopt hypervisors that survived a daemon restart; mark dead ones STOPPED."""
        # Side by side: each adoption may wait up to the control timeout for its hypervisor.
        await asyncio.gather(
            *(self._recover_one(vm) for vm in self.store.list() if vm.state != VmState.STOPPED)
        )

    async def _recover_one(self, vm: VmRecord) -> None:
        paths = self.paths(vm.id)
        pid = vm.pid
        reason = "hypervisor exited while mvirt-vmm was not running"
        backend = self.backends.get(vm.hypervisor or _backend_of(pid) or self.hypervisor.name)
        if pid is not None and backend is None:
            # Neither adopt nor kill what this daemon cannot drive: leave it as it is.
            log.warning("VM %s runs on %s, which this daemon cannot drive", vm.id, vm.hypervisor)
            return
        if pid is not None and backend is not None:
            try:
                if await backend.adopt(self._spec(vm), paths, pid):
                    self._track(vm, pid, _read_tail(paths.serial_log, 64 * 1024), backend)
                    vm = self.store.set_state(vm, VmState.RUNNING)
                    log.info("re-adopted VM %s (pid %s) on %s", vm.id, pid, backend.name)
                    self._audit(f"VM {vm.name or vm.id} re-adopted after restart", vm)
                    return
            except (HypervisorError, ProcessLookupError) as exc:
                log.warning("adopting VM %s failed: %s", vm.id, exc)
                await backend.forget(vm.id)
            # A hypervisor of this VM that cannot be controlled must not run on unmanaged.
            if owns_process(pid, paths, cmdline_of(pid)):
                kill(pid)
                reason = "hypervisor could not be re-adopted after a restart and was killed"
        vm = self.store.set_state(vm, VmState.STOPPED, pid=None, stop_reason=reason)
        self._audit(f"VM {vm.name or vm.id} stopped: {reason}", vm)
        self._emit(vm.id, VmEventType.STOPPED, vm)

    async def close(self) -> None:
        """Release everything; running VMs keep running for the next daemon to adopt.

        Starts still in progress are ended (their hypervisor killed, the VM STOPPED); a stop
        still waiting is abandoned: its VM stays STOPPING and the next daemon re-adopts it.
        """
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subscription in list(self._watchers):
            subscription.push(None)
        for vm_id, runtime in list(self._runtimes.items()):
            if runtime.monitor is not None:
                runtime.monitor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runtime.monitor
            runtime.watch.close()
            await runtime.hub.close()
            await runtime.backend.forget(vm_id)
        self._runtimes.clear()
        self.store.close()
