"""Validation of VM configurations: every problem names the field and how to fix it.

Checks run before anything is stored or spawned, so a rejected request leaves no trace.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.vmm.backend import DiskSpec, NicSpec
from mvirt.vmm.model import BootMode, VmConfig
from mvirt.vmm.path_policy import PathPolicy, check_text, shown

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
TAP_RE = re.compile(r"^[A-Za-z0-9._-]{1,15}$")
# vhost-user socket paths reach QEMU inside an option string (``-chardev socket,path=...``):
# a strict alphabet keeps ",logfile=..." and friends out. 107 bytes is the unix socket limit.
VHOST_RE = re.compile(r"^/[A-Za-z0-9._/+-]{1,106}$")
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
    check_text("name", name)
    if not NAME_RE.match(name):
        raise InvalidArgumentError(
            f"name {shown(name)} is invalid: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


def _check_readable_file(field: str, path: str, policy: PathPolicy) -> str:
    """The canonical path of a readable file or block device the policy allows."""
    canonical = policy.check(field, path)
    try:
        mode = os.stat(canonical).st_mode
    except FileNotFoundError:
        raise InvalidArgumentError(f"{field} {shown(path)} does not exist") from None
    except OSError as exc:
        raise InvalidArgumentError(
            f"{field} {shown(path)} cannot be read: {exc.strerror}"
        ) from None
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise InvalidArgumentError(f"{field} {shown(path)} is not a regular file or block device")
    if not os.access(canonical, os.R_OK):
        raise InvalidArgumentError(f"{field} {shown(path)} is not readable by mvirt-vmm")
    return canonical


def check_disk(field: str, disk: DiskSpec, policy: PathPolicy) -> DiskSpec:
    """A disk path the policy allows, existing, a file or block device, readable (and writable
    unless read-only); returned with its canonical path."""
    path = _check_readable_file(f"{field}.path", disk.path, policy)
    if not disk.readonly and not os.access(path, os.W_OK):
        raise InvalidArgumentError(
            f"{field}.path {shown(disk.path)} is not writable; attach it with readonly set"
        )
    return replace(disk, path=path)


def check_vhost(field: str, nic: NicSpec, policy: PathPolicy) -> NicSpec:
    """A vhost-user socket path the policy allows, in the strict alphabet; canonical."""
    if nic.vhost_socket is None:
        return nic
    path = policy.check(f"{field}.vhost_socket", nic.vhost_socket, must_exist=False)
    if not VHOST_RE.match(path):
        raise InvalidArgumentError(
            f"{field}.vhost_socket {shown(path)} may only use A-Z a-z 0-9 . _ - + / "
            "(at most 107 bytes)"
        )
    return replace(nic, vhost_socket=path)


def random_mac() -> str:
    """A random locally administered unicast MAC in QEMU's 52:54:00 range."""
    tail = secrets.token_bytes(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def check_nic(field: str, mac: str | None, tap: str | None, vhost_socket: str | None) -> NicSpec:
    """A NIC: valid unicast MAC (generated when empty), exactly one of tap / vhost_socket.

    The vhost socket's place is checked against the path policy by :func:`check_vhost`.
    """
    for name, value in (("mac", mac), ("tap", tap), ("vhost_socket", vhost_socket)):
        if value:
            check_text(f"{field}.{name}", value)
    if mac:
        if not MAC_RE.match(mac):
            raise InvalidArgumentError(
                f"{field}.mac {shown(mac)} is not a MAC address like 52:54:00:12:34:56"
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
            f"{field}.tap {shown(tap)} is not an interface name (1-15 of A-Z a-z 0-9 . _ -)"
        )
    if vhost_socket and not VHOST_RE.match(vhost_socket):
        raise InvalidArgumentError(
            f"{field}.vhost_socket {shown(vhost_socket)} must be an absolute path of "
            "A-Z a-z 0-9 . _ - + / (at most 107 bytes)"
        )
    return NicSpec(mac=mac, tap=tap or None, vhost_socket=vhost_socket or None)


def check_unique_disks(disks: Sequence[DiskSpec]) -> None:
    """No path twice."""
    seen: set[str] = set()
    for index, disk in enumerate(disks):
        if disk.path in seen:
            raise InvalidArgumentError(
                f"config.disks[{index}].path {shown(disk.path)} is listed twice (after "
                "resolving links)"
            )
        seen.add(disk.path)


def check_unique_macs(nics: Sequence[NicSpec]) -> None:
    """No MAC twice."""
    seen: set[str] = set()
    for index, nic in enumerate(nics):
        if nic.mac in seen:
            raise InvalidArgumentError(f"config.nics[{index}].mac {nic.mac} is used twice")
        seen.add(nic.mac)


def check_config(config: VmConfig, limits: HostLimits, policy: PathPolicy) -> VmConfig:
    """Everything about a VM config; raises :class:`InvalidArgumentError` naming the field.

    Returns the config with every path in its canonical spelling.
    """
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
    kernel, initramfs = config.kernel, config.initramfs
    if config.boot_mode == BootMode.KERNEL:
        if not config.kernel:
            raise InvalidArgumentError("config.kernel is required for BOOT_MODE_KERNEL")
        kernel = _check_readable_file("config.kernel", config.kernel, policy)
        if config.initramfs:
            initramfs = _check_readable_file("config.initramfs", config.initramfs, policy)
    else:
        for field in ("kernel", "initramfs", "cmdline"):
            if getattr(config, field):
                raise InvalidArgumentError(
                    f"config.{field} only applies to BOOT_MODE_KERNEL; "
                    "drop it or set boot_mode to BOOT_MODE_KERNEL"
                )
        if not config.disks:
            raise InvalidArgumentError("config.disks is empty: BOOT_MODE_DISK boots the first disk")
    if config.cmdline:
        check_text("config.cmdline", config.cmdline)
        if len(config.cmdline) > MAX_CMDLINE:
            raise InvalidArgumentError(f"config.cmdline is longer than {MAX_CMDLINE} characters")
        if "\n" in config.cmdline:
            raise InvalidArgumentError("config.cmdline must be a single line")
    disks = tuple(
        check_disk(f"config.disks[{index}]", disk, policy)
        for index, disk in enumerate(config.disks)
    )
    check_unique_disks(disks)
    nics = tuple(
        check_vhost(f"config.nics[{index}]", nic, policy) for index, nic in enumerate(config.nics)
    )
    check_unique_macs(nics)
    if config.user_data is not None and len(config.user_data.encode()) > MAX_USER_DATA:
        raise InvalidArgumentError(f"config.user_data is larger than {MAX_USER_DATA} bytes")
    return replace(config, kernel=kernel, initramfs=initramfs, disks=disks, nics=nics)
