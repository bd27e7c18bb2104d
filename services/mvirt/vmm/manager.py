"""The VM manager: lifecycle, hot-plug, consoles, events and recovery, above one hypervisor
backend and the store. The gRPC servicer is a thin layer over this class.

Concurrency: every mutation of one VM holds that VM's lock, except KillVm, which must be able
to cut short a StopVm that waits forever. A monitor task per running VM notices the
hypervisor's exit and records it (state STOPPED, the reason kept); operations that end a VM
wait for that monitor instead of writing the state themselves, so each exit is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from mvirt.daemon.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
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
from mvirt.vmm.process import ProcessWatch, cmdline_of, describe_exit, kill
from mvirt.vmm.store import NameTakenError, VmStore
from mvirt.vmm.validation import (
    HostLimits,
    check_config,
    check_disk,
    check_name,
    check_unique_disks,
    check_unique_macs,
)

log = logging.getLogger("mvirt.vmm.manager")

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


@dataclass
class Runtime:
    """What the daemon holds for one running VM."""

    pid: int
    watch: ProcessWatch
    hub: ConsoleHub
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    monitor: asyncio.Task[None] | None = None


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


class VmManager:
    """All VMs of one daemon."""

    def __init__(
        self,
        data_dir: Path,
        hypervisor: Hypervisor,
        audit: AuditLog,
        limits: HostLimits | None = None,
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
        self.audit = audit
        self.limits = limits or HostLimits.detect()
        self._locks: dict[str, asyncio.Lock] = {}
        self._runtimes: dict[str, Runtime] = {}
        self._watchers: set[asyncio.Queue[VmEvent | None]] = set()

    # -- helpers ---------------------------------------------------------------------------

    def paths(self, vm_id: str) -> VmPaths:
        """The folder of one VM."""
        return VmPaths(self.vms_dir / vm_id)

    def _lock(self, vm_id: str) -> asyncio.Lock:
        return self._locks.setdefault(vm_id, asyncio.Lock())

    def get(self, ref: str) -> VmRecord:
        """A VM by id (or, for convenience, by name); NOT_FOUND otherwise."""
        if not ref:
            raise InvalidArgumentError("id is empty: give a VM id")
        vm = self.store.get(ref) or self.store.get_by_name(ref)
        if vm is None:
            raise NotFoundError(f"VM {ref!r} does not exist; `mvirt list` shows the VMs")
        return vm

    def list(self) -> list[VmRecord]:
        """Every VM."""
        return self.store.list()

    def allocated(self) -> tuple[int, int]:
        """(vcpus, memory MiB) of the VMs that are not stopped."""
        running = [vm for vm in self.store.list() if vm.state != VmState.STOPPED]
        return sum(vm.config.vcpus for vm in running), sum(vm.config.memory_mb for vm in running)

    def _emit(self, vm_id: str, kind: VmEventType, vm: VmRecord | None) -> None:
        event = VmEvent(vm_id, kind, int(time.time()), vm)
        for queue in list(self._watchers):
            queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[VmEvent | None]:
        """A queue that receives every event from now on (None when the daemon stops)."""
        queue: asyncio.Queue[VmEvent | None] = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[VmEvent | None]) -> None:
        """Stop delivering events to ``queue``."""
        self._watchers.discard(queue)

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
        check_config(config, self.limits)
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
        """STOPPED → STARTING → RUNNING; the monitor records the exit later."""
        vm = self.get(ref)
        async with self._lock(vm.id):
            vm = self.get(vm.id)
            if vm.state != VmState.STOPPED:
                raise FailedPreconditionError(f"VM {ref!r} is {vm.state.name}, not STOPPED")
            vm = self.store.set_state(vm, VmState.STARTING, stop_reason=None)
            paths = self.paths(vm.id)
            paths.root.mkdir(parents=True, exist_ok=True)
            _trim_log(paths.serial_log, keep=SERIAL_LOG_KEEP)
            try:
                # Disks may have vanished since CreateVm: say which one instead of failing late.
                for index, disk in enumerate(vm.config.disks):
                    check_disk(f"config.disks[{index}]", disk)
                self._write_seed(vm)
                starting = vm

                def record_pid(pid: int) -> None:
                    self.store.set_state(starting, VmState.STARTING, pid=pid)

                pid = await self.hypervisor.start(self._spec(vm), paths, on_spawn=record_pid)
            except (HypervisorError, InvalidArgumentError, OSError) as exc:
                self.store.set_state(
                    vm, VmState.STOPPED, pid=None, stop_reason=f"start failed: {exc}"
                )
                if isinstance(exc, HypervisorMissingError):
                    # This host lacks something (binary, KVM, firmware): retrying cannot help.
                    raise FailedPreconditionError(f"VM {ref!r} cannot start here: {exc}") from None
                raise FailedPreconditionError(f"VM {ref!r} could not start: {exc}") from None
            vm = self.store.set_state(vm, VmState.RUNNING, started_at=int(time.time()), pid=pid)
            self._track(vm, pid, backlog=b"")
            self._audit(f"VM {vm.name or vm.id} started (pid {pid})", vm)
            self._emit(vm.id, VmEventType.STARTED, vm)
            return vm

    def _track(self, vm: VmRecord, pid: int, backlog: bytes) -> None:
        watch = ProcessWatch(pid)  # first: raises ProcessLookupError when the pid is gone
        hub = ConsoleHub(self.paths(vm.id).serial_socket, backlog)
        hub.start()
        runtime = Runtime(pid=pid, watch=watch, hub=hub)
        runtime.monitor = asyncio.create_task(self._monitor(vm.id, runtime), name=f"vm {vm.id}")
        self._runtimes[vm.id] = runtime

    async def _monitor(self, vm_id: str, runtime: Runtime) -> None:
        status = await runtime.watch.wait()
        reason = runtime.reason or ("guest powered off" if status == 0 else describe_exit(status))
        try:
            await self.hypervisor.forget(vm_id)
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
            raise FailedPreconditionError(f"VM {ref!r} is not running")
        return runtime

    async def stop(self, ref: str, timeout: float) -> VmRecord:
        """Press the power button, wait up to ``timeout`` s (0 = forever), then kill."""
        if timeout < 0:
            raise InvalidArgumentError("timeout_seconds must not be negative (0 waits forever)")
        vm = self.get(ref)
        async with self._lock(vm.id):
            vm = self.get(vm.id)
            if vm.state != VmState.RUNNING:
                raise FailedPreconditionError(f"VM {ref!r} is {vm.state.name}, not RUNNING")
            runtime = self._runtime(vm, ref)
            self.store.set_state(vm, VmState.STOPPING)
            self._audit(f"VM {vm.name or vm.id} stopping (power button, timeout {timeout:g} s)", vm)
            runtime.reason = "stopped by request (power button)"
            try:
                await self.hypervisor.power_button(vm.id)
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
        """SIGKILL the hypervisor and wait until its exit is recorded."""
        vm = self.get(ref)
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
                    f"VM {ref!r} is {vm.state.name}: stop or kill it before deleting it"
                )
            self.store.delete(vm.id)
            shutil.rmtree(self.paths(vm.id).root, ignore_errors=True)
            self._locks.pop(vm.id, None)
            self._audit(f"VM {vm.name or vm.id} deleted", vm)
            self._emit(vm.id, VmEventType.DELETED, vm)

    # -- hot-plug --------------------------------------------------------------------------

    async def _hotplug_target(self, ref: str) -> VmRecord:
        vm = self.get(ref)
        if vm.state in (VmState.STARTING, VmState.STOPPING):
            raise FailedPreconditionError(f"VM {ref!r} is {vm.state.name}; retry when it settled")
        return vm

    async def attach_disk(self, ref: str, disk: DiskSpec) -> VmRecord:
        """Add a disk (hot-plugged when running), persisted in the config."""
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            check_disk("disk", disk)
            if any(d.path == disk.path for d in vm.config.disks):
                raise AlreadyExistsError(f"disk {disk.path!r} is attached to VM {ref!r} already")
            check_unique_disks([*vm.config.disks, disk])
            if vm.state == VmState.RUNNING:
                try:
                    await self.hypervisor.attach_disk(vm.id, disk)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-plug of {disk.path!r} failed: {exc}"
                    ) from None
            vm = replace(vm, config=vm.config.with_disks((*vm.config.disks, disk)))
            self.store.update(vm)
            self._audit(f"disk {disk.path} attached to VM {vm.name or vm.id}", vm)
            return vm

    async def detach_disk(self, ref: str, path: str) -> VmRecord:
        """Remove a disk by path (hot-unplugged when running)."""
        if not path:
            raise InvalidArgumentError("path is empty: give the path of an attached disk")
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            disk = next((d for d in vm.config.disks if d.path == path), None)
            if disk is None:
                raise NotFoundError(f"disk {path!r} is not attached to VM {ref!r}")
            if vm.state == VmState.RUNNING:
                try:
                    await self.hypervisor.detach_disk(vm.id, disk)
                except HypervisorError as exc:
                    raise FailedPreconditionError(f"hot-unplug of {path!r} failed: {exc}") from None
            vm = replace(
                vm, config=vm.config.with_disks(tuple(d for d in vm.config.disks if d != disk))
            )
            self.store.update(vm)
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
                    f"a NIC with MAC {nic.mac} is attached to VM {ref!r} already"
                )
            check_unique_macs([*vm.config.nics, nic])
            if vm.state == VmState.RUNNING:
                try:
                    await self.hypervisor.attach_nic(vm.id, nic)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-plug of NIC {nic.mac} failed: {exc}"
                    ) from None
            vm = replace(vm, config=vm.config.with_nics((*vm.config.nics, nic)))
            self.store.update(vm)
            self._audit(f"NIC {nic.mac} attached to VM {vm.name or vm.id}", vm)
            return vm

    async def detach_nic(self, ref: str, mac: str) -> VmRecord:
        """Remove a NIC by MAC (hot-unplugged when running)."""
        if not mac:
            raise InvalidArgumentError("mac is empty: give the MAC of an attached NIC")
        vm = await self._hotplug_target(ref)
        async with self._lock(vm.id):
            vm = await self._hotplug_target(vm.id)
            nic = next((n for n in vm.config.nics if n.mac == mac.lower()), None)
            if nic is None:
                raise NotFoundError(f"no NIC with MAC {mac} is attached to VM {ref!r}")
            if vm.state == VmState.RUNNING:
                try:
                    await self.hypervisor.detach_nic(vm.id, nic)
                except HypervisorError as exc:
                    raise FailedPreconditionError(
                        f"hot-unplug of NIC {mac} failed: {exc}"
                    ) from None
            vm = replace(
                vm, config=vm.config.with_nics(tuple(n for n in vm.config.nics if n != nic))
            )
            self.store.update(vm)
            self._audit(f"NIC {mac} detached from VM {vm.name or vm.id}", vm, nic.mac)
            return vm

    # -- console ---------------------------------------------------------------------------

    def console(self, ref: str) -> tuple[ConsoleHub, Viewer]:
        """Attach a viewer to a running VM's serial console."""
        vm = self.get(ref)
        runtime = self._runtime(vm, ref)
        return runtime.hub, runtime.hub.attach()

    # -- daemon start and stop -------------------------------------------------------------

    async def recover(self) -> None:
        """Re-adopt hypervisors that survived a daemon restart; mark dead ones STOPPED."""
        for vm in self.store.list():
            if vm.state != VmState.STOPPED:
                await self._recover_one(vm)

    async def _recover_one(self, vm: VmRecord) -> None:
        paths = self.paths(vm.id)
        pid = vm.pid
        reason = "hypervisor exited while mvirt-vmm was not running"
        if pid is not None:
            try:
                if await self.hypervisor.adopt(self._spec(vm), paths, pid):
                    self._track(vm, pid, _read_tail(paths.serial_log, 64 * 1024))
                    vm = self.store.set_state(vm, VmState.RUNNING)
                    log.info("re-adopted VM %s (pid %s)", vm.id, pid)
                    self._audit(f"VM {vm.name or vm.id} re-adopted after restart", vm)
                    return
            except (HypervisorError, ProcessLookupError) as exc:
                log.warning("adopting VM %s failed: %s", vm.id, exc)
                await self.hypervisor.forget(vm.id)
            # A hypervisor of this VM that cannot be controlled must not run on unmanaged.
            if owns_process(pid, paths, cmdline_of(pid)):
                kill(pid)
                reason = "hypervisor could not be re-adopted after a restart and was killed"
        vm = self.store.set_state(vm, VmState.STOPPED, pid=None, stop_reason=reason)
        self._audit(f"VM {vm.name or vm.id} stopped: {reason}", vm)
        self._emit(vm.id, VmEventType.STOPPED, vm)

    async def close(self) -> None:
        """Release everything; running VMs keep running for the next daemon to adopt."""
        for queue in list(self._watchers):
            queue.put_nowait(None)
        for vm_id, runtime in list(self._runtimes.items()):
            if runtime.monitor is not None:
                runtime.monitor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runtime.monitor
            runtime.watch.close()
            await runtime.hub.close()
            await self.hypervisor.forget(vm_id)
        self._runtimes.clear()
        self.store.close()
