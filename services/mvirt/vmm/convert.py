"""Conversion between the wire messages (``mvirt.proto.vmm_pb2``) and the domain model.

Request fields are checked here only for shape (presence, enum range); what they mean is
checked by :mod:`mvirt.vmm.validation`.
"""

from __future__ import annotations

from dataclasses import asdict

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.proto import vmm_pb2
from mvirt.vmm.backend import DiskSpec
from mvirt.vmm.manager import VmEvent
from mvirt.vmm.model import BootMode, VmConfig, VmRecord
from mvirt.vmm.sysinfo import SystemInfo
from mvirt.vmm.validation import check_nic


def _optional(message: object, field: str) -> str | None:
    value: str = getattr(message, field)
    return value if message.HasField(field) and value else None  # type: ignore[attr-defined]


def config_from_proto(config: vmm_pb2.VmConfig) -> VmConfig:
    """A domain config from a request; BOOT_MODE_UNSPECIFIED means kernel boot when a kernel
    is given, else disk boot."""
    kernel = _optional(config, "kernel")
    if config.boot_mode == vmm_pb2.BOOT_MODE_UNSPECIFIED:
        boot_mode = BootMode.KERNEL if kernel else BootMode.DISK
    elif config.boot_mode in (vmm_pb2.BOOT_MODE_DISK, vmm_pb2.BOOT_MODE_KERNEL):
        boot_mode = BootMode(config.boot_mode)
    else:
        raise InvalidArgumentError(f"config.boot_mode {config.boot_mode} is not a known BootMode")
    nics = tuple(
        check_nic(
            f"config.nics[{index}]",
            _optional(nic, "mac"),
            _optional(nic, "tap"),
            _optional(nic, "vhost_socket"),
        )
        for index, nic in enumerate(config.nics)
    )
    return VmConfig(
        vcpus=config.vcpus,
        memory_mb=config.memory_mb,
        boot_mode=boot_mode,
        kernel=kernel,
        initramfs=_optional(config, "initramfs"),
        cmdline=_optional(config, "cmdline"),
        disks=tuple(DiskSpec(d.path, d.readonly) for d in config.disks),
        nics=nics,
        user_data=config.user_data if config.HasField("user_data") else None,
        nested_virt=config.nested_virt,
    )


def config_to_proto(config: VmConfig) -> vmm_pb2.VmConfig:
    """The wire form of a config."""
    message = vmm_pb2.VmConfig(
        vcpus=config.vcpus,
        memory_mb=config.memory_mb,
        boot_mode=int(config.boot_mode),  # type: ignore[arg-type]
        disks=[vmm_pb2.DiskConfig(path=d.path, readonly=d.readonly) for d in config.disks],
        nics=[
            vmm_pb2.NicConfig(mac=n.mac, tap=n.tap, vhost_socket=n.vhost_socket)
            for n in config.nics
        ],
        nested_virt=config.nested_virt,
    )
    for field in ("kernel", "initramfs", "cmdline", "user_data"):
        value = getattr(config, field)
        if value is not None:
            setattr(message, field, value)
    return message


def vm_to_proto(vm: VmRecord) -> vmm_pb2.Vm:
    """The wire form of a VM."""
    message = vmm_pb2.Vm(
        id=vm.id,
        state=int(vm.state),  # type: ignore[arg-type]
        config=config_to_proto(vm.config),
        created_at=vm.created_at,
    )
    if vm.name is not None:
        message.name = vm.name
    if vm.started_at is not None and vm.state != 1:
        message.started_at = vm.started_at
    if vm.stop_reason is not None:
        message.stop_reason = vm.stop_reason
    return message


def event_to_proto(event: VmEvent) -> vmm_pb2.VmEvent:
    """The wire form of a WatchVms event."""
    message = vmm_pb2.VmEvent(
        vm_id=event.vm_id,
        type=int(event.type),  # type: ignore[arg-type]
        timestamp=event.timestamp,
    )
    if event.vm is not None:
        message.vm.CopyFrom(vm_to_proto(event.vm))
    return message


def system_info_to_proto(info: SystemInfo) -> vmm_pb2.SystemInfo:
    """The wire form of GetSystemInfo's answer (field names match one to one)."""
    data = asdict(info)
    for nic in data["nics"]:
        if nic["speed_mbps"] is None:
            del nic["speed_mbps"]
    return vmm_pb2.SystemInfo(**data)
