"""Validation of VM configurations: every problem names the field and how to fix it.

Checks run before anything is stored or spawned, so a rejected request leaves no trace.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.vmm.backend import DiskSpec, NicSpec
from mvirt.vmm.model import BootMode, VmConfig

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
TAP_RE = re.compile(r"^[A-Za-z0-9._-]{1,15}$")
MIN_MEMORY_MB = 32
MAX_CMDLINE = 4096
MAX_USER_DATA = 1024 * 1024


@dataclass(frozen=True)
class HostLimits:
    """What one VM may ask for on this host."""

    cpus: int
    memory_mb: int

    @classmethod
    def detect(cls) -> HostLimits:
        """CPUs and memory of this host."""
        memory_kb = 0
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory_kb = int(line.split()[1])
        return cls(cpus=os.cpu_count() or 1, memory_mb=memory_kb // 1024)


def check_name(name: str) -> None:
    """A VM name: 1-63 characters, letters, digits, ``.``, ``_``, ``-``, not starting with a
    punctuation character (names appear in paths and on command lines)."""
    if not NAME_RE.match(name):
        raise InvalidArgumentError(
            f"name {name!r} is invalid: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _check_readable_file(field: str, path: str) -> None:
    if not path:
        raise InvalidArgumentError(f"{field} is empty: give an absolute path")
    if not os.path.isabs(path):
        raise InvalidArgumentError(f"{field} {path!r} is not an absolute path")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidArgumentError(f"{field} {path!r} does not exist") from None
    except OSError as exc:
        raise InvalidArgumentError(f"{field} {path!r} cannot be read: {exc.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise InvalidArgumentError(f"{field} {path!r} is not a regular file or block device")
    if not os.access(path, os.R_OK):
        raise InvalidArgumentError(f"{field} {path!r} is not readable by mvirt-vmm")


def check_disk(field: str, disk: DiskSpec) -> None:
    """A disk path exists, is a file or block device, readable (and writable unless read-only)."""
    _check_readable_file(f"{field}.path", disk.path)
    if not disk.readonly and not os.access(disk.path, os.W_OK):
        raise InvalidArgumentError(
            f"{field}.path {disk.path!r} is not writable; attach it with readonly set"
        )


def random_mac() -> str:
    """A random locally administered unicast MAC in QEMU's 52:54:00 range."""
    tail = secrets.token_bytes(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def check_nic(field: str, mac: str | None, tap: str | None, vhost_socket: str | None) -> NicSpec:
    """A NIC: valid unicast MAC (generated when empty), exactly one of tap / vhost_socket."""
    if mac:
        if not MAC_RE.match(mac):
            raise InvalidArgumentError(
                f"{field}.mac {mac!r} is not a MAC address like 52:54:00:12:34:56"
            )
        if int(mac[:2], 16) & 1:
            raise InvalidArgumentError(
                f"{field}.mac {mac!r} is a multicast address; use a unicast one"
            )
        mac = mac.lower()
    else:
        mac = random_mac()
    if bool(tap) == bool(vhost_socket):
        raise InvalidArgumentError(f"{field}: set exactly one of tap or vhost_socket")
    if tap and not TAP_RE.match(tap):
        raise InvalidArgumentError(
            f"{field}.tap {tap!r} is not an interface name (1-15 of A-Z a-z 0-9 . _ -)"
        )
    if vhost_socket and not os.path.isabs(vhost_socket):
        raise InvalidArgumentError(f"{field}.vhost_socket {vhost_socket!r} is not an absolute path")
    return NicSpec(mac=mac, tap=tap or None, vhost_socket=vhost_socket or None)


def check_unique_disks(disks: Sequence[DiskSpec]) -> None:
    """No path twice."""
    seen: set[str] = set()
    for index, disk in enumerate(disks):
        if disk.path in seen:
            raise InvalidArgumentError(f"config.disks[{index}].path {disk.path!r} is listed twice")
        seen.add(disk.path)


def check_unique_macs(nics: Sequence[NicSpec]) -> None:
    """No MAC twice."""
    seen: set[str] = set()
    for index, nic in enumerate(nics):
        if nic.mac in seen:
            raise InvalidArgumentError(f"config.nics[{index}].mac {nic.mac} is used twice")
        seen.add(nic.mac)


def check_config(config: VmConfig, limits: HostLimits) -> None:
    """Everything about a VM config; raises :class:`InvalidArgumentError` naming the field."""
    if not 1 <= config.vcpus <= limits.cpus:
        raise InvalidArgumentError(
            f"config.vcpus is {config.vcpus}: it must be between 1 and {limits.cpus} "
            "(the host's CPUs)"
        )
    if not MIN_MEMORY_MB <= config.memory_mb <= limits.memory_mb:
        raise InvalidArgumentError(
            f"config.memory_mb is {config.memory_mb}: it must be between {MIN_MEMORY_MB} and "
            f"{limits.memory_mb} (the host's memory)"
        )
    if config.boot_mode == BootMode.KERNEL:
        if not config.kernel:
            raise InvalidArgumentError("config.kernel is required for BOOT_MODE_KERNEL")
        _check_readable_file("config.kernel", config.kernel)
        if config.initramfs:
            _check_readable_file("config.initramfs", config.initramfs)
    else:
        for field in ("kernel", "initramfs", "cmdline"):
            if getattr(config, field):
                raise InvalidArgumentError(
                    f"config.{field} only applies to BOOT_MODE_KERNEL; "
                    "drop it or set boot_mode to BOOT_MODE_KERNEL"
                )
        if not config.disks:
            raise InvalidArgumentError("config.disks is empty: BOOT_MODE_DISK boots the first disk")
    if config.cmdline and len(config.cmdline) > MAX_CMDLINE:
        raise InvalidArgumentError(f"config.cmdline is longer than {MAX_CMDLINE} characters")
    if config.cmdline and "\n" in config.cmdline:
        raise InvalidArgumentError("config.cmdline must be a single line")
    for index, disk in enumerate(config.disks):
        check_disk(f"config.disks[{index}]", disk)
    check_unique_disks(config.disks)
    check_unique_macs(config.nics)
    if config.user_data is not None and len(config.user_data.encode()) > MAX_USER_DATA:
        raise InvalidArgumentError(f"config.user_data is larger than {MAX_USER_DATA} bytes")
