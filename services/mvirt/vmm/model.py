"""The VM manager's domain model: VM records as stored and handed between layers.

Enum values equal the wire values of API.md, so converting to and from protobuf is a cast.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, replace
from typing import Any

from mvirt.vmm.backend import DiskSpec, NicSpec


class VmState(enum.IntEnum):
    """Lifecycle states (``mvirt.VmState``)."""

    STOPPED = 1
    STARTING = 2
    RUNNING = 3
    STOPPING = 4


class BootMode(enum.IntEnum):
    """How a VM boots (``mvirt.BootMode``)."""

    DISK = 1
    KERNEL = 2


class VmEventType(enum.IntEnum):
    """Event kinds of WatchVms (``mvirt.VmEventType``)."""

    CREATED = 1
    STARTED = 2
    STOPPED = 3
    DELETED = 4


@dataclass(frozen=True)
class VmConfig:
    """What a VM is made of; validated before it is stored."""

    vcpus: int
    memory_mb: int
    boot_mode: BootMode
    kernel: str | None = None
    initramfs: str | None = None
    cmdline: str | None = None
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    user_data: str | None = None
    nested_virt: bool = False

    def to_json(self) -> str:
        """Serialise for the store."""
        data: dict[str, Any] = {
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "boot_mode": int(self.boot_mode),
            "kernel": self.kernel,
            "initramfs": self.initramfs,
            "cmdline": self.cmdline,
            "disks": [{"path": d.path, "readonly": d.readonly} for d in self.disks],
            "nics": [
                {"mac": n.mac, "tap": n.tap, "vhost_socket": n.vhost_socket} for n in self.nics
            ],
            "user_data": self.user_data,
            "nested_virt": self.nested_virt,
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> VmConfig:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(
            vcpus=data["vcpus"],
            memory_mb=data["memory_mb"],
            boot_mode=BootMode(data["boot_mode"]),
            kernel=data.get("kernel"),
            initramfs=data.get("initramfs"),
            cmdline=data.get("cmdline"),
            disks=tuple(DiskSpec(d["path"], d["readonly"]) for d in data.get("disks", [])),
            nics=tuple(
                NicSpec(n["mac"], n.get("tap"), n.get("vhost_socket")) for n in data.get("nics", [])
            ),
            user_data=data.get("user_data"),
            nested_virt=data.get("nested_virt", False),
        )

    def with_disks(self, disks: tuple[DiskSpec, ...]) -> VmConfig:
        """A copy with another disk list."""
        return replace(self, disks=disks)

    def with_nics(self, nics: tuple[NicSpec, ...]) -> VmConfig:
        """A copy with another NIC list."""
        return replace(self, nics=nics)


@dataclass(frozen=True)
class VmRecord:
    """One VM as the store keeps it."""

    id: str
    name: str | None
    state: VmState
    config: VmConfig
    created_at: int
    started_at: int | None = None
    pid: int | None = None
    stop_reason: str | None = None
    hypervisor: str | None = None
    """Name of the backend that runs (or last ran) the VM; None before its first start."""
