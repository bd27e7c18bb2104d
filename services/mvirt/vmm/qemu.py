"""The QEMU backend: one ``qemu-system-x86_64`` per VM, controlled over QMP (qemu.qmp).

Machine choice: ``pc`` (i440fx). Its root bus supports ACPI PCI hot-plug out of the box, so
``device_add``/``device_del`` work without pre-allocating PCIe root ports and the guest only
needs ``CONFIG_HOTPLUG_PCI_ACPI``. Guest memory comes from a shared memfd so vhost-user NICs
(which need the backend to map guest memory) can be attached at start or later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, ExecuteError, QMPClient, QMPError

from mvirt.vmm.accel import AcceleratorChoice
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
from mvirt.vmm.process import cmdline_of, is_alive, kill_and_reap, spawn

log = logging.getLogger("mvirt.vmm.qemu")

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
_CONNECT_TIMEOUT = 10.0
_UNPLUG_TIMEOUT = 10.0
CONTROL_TIMEOUT = 10.0


def opt(value: str) -> str:
    """``value`` escaped for a QEMU option string (``key=value,key=value``): QEMU reads a
    doubled comma as a literal one, so a value cannot end itself and start another option.
    Request data is also held to strict alphabets before it gets here (validation.py)."""
    return value.replace(",", ",,")


def _blockdev(disk: DiskSpec, node: str) -> dict[str, Any]:
    return {
        "driver": "raw",
        "node-name": node,
        "read-only": disk.readonly,
        "file": {"driver": "file", "filename": disk.path, "read-only": disk.readonly},
    }


def _disk_args(disk: DiskSpec, bootindex: int | None) -> list[str]:
    node = disk.device_id + "-blk"
    # -blockdev takes JSON, which keeps odd characters in paths (commas!) safe.
    device = f"virtio-blk-pci,drive={node},id={disk.device_id}"
    if bootindex is not None:
        device += f",bootindex={bootindex}"
    return ["-blockdev", json.dumps(_blockdev(disk, node)), "-device", device]


def _nic_args(nic: NicSpec) -> list[str]:
    netdev = nic.device_id + "-net"
    args: list[str] = []
    if nic.vhost_socket:
        chardev = nic.device_id + "-chr"
        args += ["-chardev", f"socket,id={chardev},path={opt(nic.vhost_socket)}"]
        args += ["-netdev", f"vhost-user,id={netdev},chardev={chardev}"]
    else:
        args += ["-netdev", f"tap,id={netdev},ifname={opt(nic.tap or '')},script=no,downscript=no"]
    args += ["-device", f"virtio-net-pci,netdev={netdev},mac={nic.mac},id={nic.device_id}"]
    return args


def build_argv(
    binary: str, accel: str, spec: VmSpec, paths: VmPaths, ovmf_code: str = OVMF_CODE
) -> list[str]:
    """The QEMU command line for ``spec`` (pure: no files touched)."""
    cpu = "host" if accel == "kvm" else "max"
    if accel == "kvm" and spec.nested_virt:
        cpu += ",+vmx"
    argv = [
        binary,
        "-name", f"mvirt-{spec.id}",
        "-machine", "pc,memory-backend=mem0",
        "-accel", accel,
        "-cpu", cpu,
        "-smp", str(spec.vcpus),
        "-m", f"{spec.memory_mb}M",
        "-object", f"memory-backend-memfd,id=mem0,size={spec.memory_mb}M,share=on",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-qmp", f"unix:{opt(str(paths.control_socket))},server=on,wait=off",
        "-chardev",
        f"socket,id=serial0,path={opt(str(paths.serial_socket))},server=on,wait=off,"
        f"logfile={opt(str(paths.serial_log))},logappend=on",
        "-serial", "chardev:serial0",
        "-device", "virtio-rng-pci",
    ]  # fmt: skip
    if spec.boot_kernel:
        assert spec.kernel is not None
        argv += ["-kernel", spec.kernel]
        if spec.initramfs:
            argv += ["-initrd", spec.initramfs]
        if spec.cmdline:
            argv += ["-append", spec.cmdline]
    else:
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={opt(ovmf_code)}"]
        argv += ["-drive", f"if=pflash,format=raw,unit=1,file={opt(str(paths.efi_vars))}"]
    for index, disk in enumerate(spec.disks):
        argv += _disk_args(disk, bootindex=index if not spec.boot_kernel and index == 0 else None)
    if spec.seed_iso:
        argv += _disk_args(DiskSpec(spec.seed_iso, readonly=True), bootindex=None)
    for nic in spec.nics:
        argv += _nic_args(nic)
    return argv


def _log_tail(path: Path, limit: int = 1500) -> str:
    try:
        return path.read_text(errors="replace").strip()[-limit:]
    except FileNotFoundError:
        return ""


class QemuHypervisor(Hypervisor):
    """Runs VMs with QEMU; the accelerator is probed once per daemon."""

    name = "qemu"

    def __init__(
        self,
        binary: str = "qemu-system-x86_64",
        accel: str | None = None,
        ovmf_code: str = OVMF_CODE,
        ovmf_vars: str = OVMF_VARS,
        control_timeout: float = CONTROL_TIMEOUT,
    ) -> None:
        self.binary = binary
        # Every QMP exchange is bounded: a QEMU that stopped answering (stopped, hung, or not
        # QEMU at all) must not hang a call, a shutdown or the daemon's recovery.
        self.control_timeout = control_timeout
        self.accel = AcceleratorChoice(binary, accel)
        self.ovmf_code = ovmf_code
        self.ovmf_vars = ovmf_vars
        self._qmp: dict[str, QMPClient] = {}

    async def start(
        self, spec: VmSpec, paths: VmPaths, on_spawn: Callable[[int], None] | None = None
    ) -> int:
        """Spawn QEMU for ``spec`` and connect to its QMP socket."""
        if shutil.which(self.binary) is None:
            raise HypervisorMissingError(
                f"QEMU binary {self.binary!r} not found; install qemu-system-x86"
            )
        if not spec.boot_kernel:
            if not Path(self.ovmf_code).is_file():
                raise HypervisorMissingError(
                    f"UEFI firmware {self.ovmf_code} not found; install ovmf"
                )
            if not paths.efi_vars.exists():
                shutil.copyfile(self.ovmf_vars, paths.efi_vars)
        for stale in (paths.control_socket, paths.serial_socket):
            stale.unlink(missing_ok=True)
        argv = build_argv(
            self.binary, await self.accel.get(spec.kernel), spec, paths, self.ovmf_code
        )
        pid = spawn(argv, log_path=paths.hypervisor_log, cwd=paths.root)
        if on_spawn is not None:
            on_spawn(pid)
        try:
            await self._connect(spec.id, paths, pid, max(_CONNECT_TIMEOUT, self.control_timeout))
        except HypervisorError:
            await kill_and_reap(pid)
            raise
        return pid

    async def _connect(self, vm_id: str, paths: VmPaths, pid: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not is_alive(pid):
                # Give the log a moment to be flushed by the exiting process.
                await asyncio.sleep(0.05)
                tail = _log_tail(paths.hypervisor_log)
                raise HypervisorError(f"QEMU exited during start: {tail or 'no output'}")
            if paths.control_socket.exists():
                client = QMPClient(f"vm-{vm_id}")
                try:
                    # The greeting must come in time: a stopped QEMU accepts but never greets.
                    await asyncio.wait_for(
                        client.connect(str(paths.control_socket)),
                        max(0.05, deadline - loop.time()),
                    )
                except (QMPError, OSError, TimeoutError):
                    await self._disconnect(client)
                else:
                    self._qmp[vm_id] = client
                    return
            if loop.time() > deadline:
                raise HypervisorError(
                    f"QMP socket of QEMU (pid {pid}) did not answer within {timeout:g} s"
                )
            await asyncio.sleep(0.01)

    async def adopt(self, spec: VmSpec, paths: VmPaths, pid: int) -> bool:
        """Reconnect to the QMP socket of a QEMU started by an earlier daemon."""
        if not owns_process(pid, paths, cmdline_of(pid)):
            return False
        try:
            await self._connect(spec.id, paths, pid, self.control_timeout)
        except HypervisorError as exc:
            log.warning("cannot adopt VM %s (pid %d): %s", spec.id, pid, exc)
            return False
        return True

    def _client(self, vm_id: str) -> QMPClient:
        client = self._qmp.get(vm_id)
        if client is None:
            raise HypervisorError(f"no QMP connection to VM {vm_id}")
        return client

    async def _execute(self, vm_id: str, cmd: str, args: dict[str, Any] | None = None) -> object:
        try:
            return await asyncio.wait_for(
                self._client(vm_id).execute(cmd, args), self.control_timeout
            )
        except TimeoutError:
            raise HypervisorError(
                f"QEMU did not answer {cmd} within {self.control_timeout:g} s"
            ) from None
        except ExecuteError as exc:
            raise HypervisorError(f"QEMU refused {cmd}: {exc.error.error.desc}") from exc
        except QMPError as exc:
            raise HypervisorError(f"QMP {cmd} failed: {exc}") from exc

    async def power_button(self, vm_id: str) -> None:
        """``system_powerdown``: the guest sees an ACPI power button press."""
        await self._execute(vm_id, "system_powerdown")

    async def attach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """blockdev-add + device_add; the block node is removed again if the device fails."""
        node = disk.device_id + "-blk"
        await self._execute(vm_id, "blockdev-add", _blockdev(disk, node))
        try:
            await self._execute(
                vm_id,
                "device_add",
                {"driver": "virtio-blk-pci", "drive": node, "id": disk.device_id},
            )
        except HypervisorError:
            with contextlib.suppress(HypervisorError):
                await self._execute(vm_id, "blockdev-del", {"node-name": node})
            raise

    async def _device_del(self, vm_id: str, device_id: str) -> None:
        client = self._client(vm_id)

        def ours(msg: Any) -> bool:
            return bool(msg.get("data", {}).get("device") == device_id)

        listener = EventListener("DEVICE_DELETED", ours)
        with client.listen(listener):
            await self._execute(vm_id, "device_del", {"id": device_id})
            try:
                await asyncio.wait_for(listener.get(), _UNPLUG_TIMEOUT)
            except TimeoutError:
                raise HypervisorError(
                    f"the guest did not release device {device_id} within "
                    f"{_UNPLUG_TIMEOUT:.0f} s (does its kernel support PCI hot-plug?)"
                ) from None

    async def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """device_del, wait for the guest to release it, then blockdev-del."""
        await self._device_del(vm_id, disk.device_id)
        await self._execute(vm_id, "blockdev-del", {"node-name": disk.device_id + "-blk"})

    async def attach_nic(self, vm_id: str, nic: NicSpec) -> None:
        """netdev_add (tap or vhost-user) + device_add virtio-net-pci."""
        netdev = nic.device_id + "-net"
        chardev = nic.device_id + "-chr"
        if nic.vhost_socket:
            await self._execute(
                vm_id,
                "chardev-add",
                {
                    "id": chardev,
                    "backend": {
                        "type": "socket",
                        "data": {
                            "addr": {"type": "unix", "data": {"path": nic.vhost_socket}},
                            "server": False,
                        },
                    },
                },
            )
            await self._execute(
                vm_id, "netdev_add", {"type": "vhost-user", "id": netdev, "chardev": chardev}
            )
        else:
            await self._execute(
                vm_id,
                "netdev_add",
                {"type": "tap", "id": netdev, "ifname": nic.tap, "script": "no",
                 "downscript": "no"},
            )  # fmt: skip
        try:
            await self._execute(
                vm_id,
                "device_add",
                {"driver": "virtio-net-pci", "netdev": netdev, "mac": nic.mac,
                 "id": nic.device_id},
            )  # fmt: skip
        except HypervisorError:
            with contextlib.suppress(HypervisorError):
                await self._execute(vm_id, "netdev_del", {"id": netdev})
            raise

    async def detach_nic(self, vm_id: str, nic: NicSpec) -> None:
        """device_del, wait for the guest, then remove the netdev (and chardev)."""
        await self._device_del(vm_id, nic.device_id)
        await self._execute(vm_id, "netdev_del", {"id": nic.device_id + "-net"})
        if nic.vhost_socket:
            with contextlib.suppress(HypervisorError):
                await self._execute(vm_id, "chardev-remove", {"id": nic.device_id + "-chr"})

    async def forget(self, vm_id: str) -> None:
        """Close the QMP connection of a VM."""
        client = self._qmp.pop(vm_id, None)
        if client is not None:
            await self._disconnect(client)

    async def _disconnect(self, client: QMPClient) -> None:
        # After QEMU died, disconnect() re-raises what its reader saw (EOFError, resets).
        with contextlib.suppress(QMPError, OSError, EOFError, TimeoutError):
            await asyncio.wait_for(client.disconnect(), self.control_timeout)
