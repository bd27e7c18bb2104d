"""The hypervisor backend interface: what the VM manager asks of QEMU or cloud-hypervisor.

The manager never knows which backend runs a VM; it hands over a :class:`VmSpec` and the VM's
:class:`VmPaths` and gets back a pid. Every backend keeps its control channel (QMP, REST API
socket) itself, keyed by VM id, and can re-open it for a process started by an earlier daemon.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class HypervisorError(Exception):
    """The hypervisor refused or failed an operation; the message says what and why."""


class HypervisorMissingError(HypervisorError):
    """The hypervisor binary or its firmware is not installed on this host."""


@dataclass(frozen=True)
class DiskSpec:
    """One disk of a VM."""

    path: str
    readonly: bool = False

    @property
    def device_id(self) -> str:
        """A stable device id derived from the path (paths identify disks in the API)."""
        return "disk-" + hashlib.sha256(self.path.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class NicSpec:
    """One network interface of a VM; ``mac`` is always set by the manager."""

    mac: str
    tap: str | None = None
    vhost_socket: str | None = None

    @property
    def device_id(self) -> str:
        """A stable device id derived from the MAC (MACs identify NICs in the API)."""
        return "nic-" + self.mac.replace(":", "").lower()


@dataclass(frozen=True)
class VmSpec:
    """Everything a backend needs to start a VM."""

    id: str
    vcpus: int
    memory_mb: int
    boot_kernel: bool
    kernel: str | None = None
    initramfs: str | None = None
    cmdline: str | None = None
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    seed_iso: str | None = None
    nested_virt: bool = False


@dataclass(frozen=True)
class VmPaths:
    """The files of one VM inside its folder under the data dir."""

    root: Path

    @property
    def control_socket(self) -> Path:
        """QMP or REST API socket."""
        return self.root / "control.sock"

    @property
    def serial_socket(self) -> Path:
        """The serial console (a stream socket the hypervisor listens on)."""
        return self.root / "serial.sock"

    @property
    def serial_log(self) -> Path:
        """Everything the guest wrote to its serial port (where the hypervisor can log it)."""
        return self.root / "serial.log"

    @property
    def hypervisor_log(self) -> Path:
        """stdout/stderr of the hypervisor process."""
        return self.root / "hypervisor.log"

    @property
    def seed_iso(self) -> Path:
        """The cloud-init NoCloud seed."""
        return self.root / "cidata.iso"

    @property
    def efi_vars(self) -> Path:
        """The per-VM copy of the UEFI variable store."""
        return self.root / "efivars.fd"


class Hypervisor(abc.ABC):
    """One hypervisor implementation; a daemon uses exactly one."""

    name: str

    @abc.abstractmethod
    async def start(
        self, spec: VmSpec, paths: VmPaths, on_spawn: Callable[[int], None] | None = None
    ) -> int:
        """Spawn the hypervisor, boot the VM, open its control channel; return the pid.

        ``on_spawn`` is called with the pid as soon as the process exists, so the caller can
        record it before waiting for the hypervisor (a daemon killed meanwhile can adopt it).
        """

    @abc.abstractmethod
    async def adopt(self, spec: VmSpec, paths: VmPaths, pid: int) -> bool:
        """Re-open the control channel of a VM started by an earlier daemon.

        Returns False when the process at ``pid`` is not this VM's hypervisor (gone, or the
        pid was reused by something else).
        """

    @abc.abstractmethod
    async def power_button(self, vm_id: str) -> None:
        """Press the ACPI power button (a graceful stop request to the guest)."""

    @abc.abstractmethod
    async def attach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """Hot-plug a disk into a running VM."""

    @abc.abstractmethod
    async def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """Hot-unplug a disk from a running VM."""

    @abc.abstractmethod
    async def attach_nic(self, vm_id: str, nic: NicSpec) -> None:
        """Hot-plug a NIC into a running VM."""

    @abc.abstractmethod
    async def detach_nic(self, vm_id: str, nic: NicSpec) -> None:
        """Hot-unplug a NIC from a running VM."""

    @abc.abstractmethod
    async def forget(self, vm_id: str) -> None:
        """Drop the control channel after the process exited (or before the daemon exits)."""


def owns_process(pid: int, paths: VmPaths, cmdline: list[str] | None) -> bool:
    """True when the process with ``cmdline`` is the hypervisor of the VM in ``paths``.

    Every backend puts the VM's control socket path on the command line, which makes a
    reused pid recognisable.
    """
    if cmdline is None:
        return False
    needle = str(paths.control_socket)
    return any(needle in arg for arg in cmdline)
