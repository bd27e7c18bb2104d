"""The cloud-hypervisor backend: one ``cloud-hypervisor --api-socket`` process per VM, driven
through its REST API over that unix socket.

Flow: spawn the VMM with only an API socket, ``PUT vm.create`` with the full configuration,
``PUT vm.boot``. Graceful stop is ``vm.power-button``; hot-plug uses ``vm.add-disk``,
``vm.add-net`` and ``vm.remove-device``. The guest serial port is a socket the VMM listens on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

from mvirt.vmm import locations, uds_http
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

log = logging.getLogger("mvirt.vmm.cloud_hypervisor")

API = "/api/v1"
DEFAULT_FIRMWARE = locations.CLOUDHV_FIRMWARE
_SOCKET_TIMEOUT = 10.0
CONTROL_TIMEOUT = 10.0


def _disk_config(disk: DiskSpec) -> dict[str, Any]:
    return {"path": disk.path, "readonly": disk.readonly, "id": disk.device_id}


def _net_config(nic: NicSpec) -> dict[str, Any]:
    config: dict[str, Any] = {"mac": nic.mac, "id": nic.device_id}
    if nic.vhost_socket:
        config.update(vhost_user=True, vhost_socket=nic.vhost_socket, vhost_mode="Client")
    else:
        config["tap"] = nic.tap
    return config


def vm_config(spec: VmSpec, paths: VmPaths, firmware: str) -> dict[str, Any]:
    """The body of ``PUT /api/v1/vm.create`` for ``spec`` (pure)."""
    payload: dict[str, Any]
    if spec.boot_kernel:
        payload = {"kernel": spec.kernel}
        if spec.initramfs:
            payload["initramfs"] = spec.initramfs
        if spec.cmdline:
            payload["cmdline"] = spec.cmdline
    else:
        payload = {"firmware": firmware}
    disks = [_disk_config(d) for d in spec.disks]
    if spec.seed_iso:
        disks.append(_disk_config(DiskSpec(spec.seed_iso, readonly=True)))
    config: dict[str, Any] = {
        "cpus": {"boot_vcpus": spec.vcpus, "max_vcpus": spec.vcpus},
        # shared memory lets vhost-user NICs map the guest's RAM
        "memory": {"size": spec.memory_mb * 1024 * 1024, "shared": True},
        "payload": payload,
        "serial": {"mode": "Socket", "socket": str(paths.serial_socket)},
        "console": {"mode": "Off"},
        "rng": {"src": "/dev/urandom"},
    }
    if disks:
        config["disks"] = disks
    if spec.nics:
        config["net"] = [_net_config(n) for n in spec.nics]
    return config


class CloudHypervisor(Hypervisor):
    """Runs VMs with cloud-hypervisor through its REST API."""

    name = "cloud-hypervisor"

    def __init__(
        self,
        binary: str = locations.CLOUD_HYPERVISOR,
        firmware: str = DEFAULT_FIRMWARE,
        kvm_device: str = locations.KVM_DEVICE,
        control_timeout: float = CONTROL_TIMEOUT,
    ) -> None:
        self.binary = binary
        self.firmware = firmware
        self.kvm_device = kvm_device
        # Every API call is bounded (connect and answer): see QemuHypervisor.
        self.control_timeout = control_timeout
        self._sockets: dict[str, str] = {}

    def check_host(self) -> None:
        """Raises HypervisorMissingError naming what this host lacks to run VMs."""
        if shutil.which(self.binary) is None:
            raise HypervisorMissingError(
                f"cloud-hypervisor binary {self.binary!r} not found; "
                "install it or run mvirt-vmm with --hypervisor qemu"
            )
        if not os.access(self.kvm_device, os.R_OK | os.W_OK):
            raise HypervisorMissingError(
                f"KVM is not available ({self.kvm_device} is missing or not accessible) and "
                "cloud-hypervisor needs it; run the node where KVM works or use --hypervisor qemu"
            )

    async def _call(
        self, socket: str, method: str, endpoint: str, body: Any = None
    ) -> uds_http.Response:
        try:
            response = await uds_http.request(
                socket, method, f"{API}/{endpoint}", body, timeout=self.control_timeout
            )
        except uds_http.HttpError as exc:
            raise HypervisorError(f"cloud-hypervisor API unreachable: {exc}") from exc
        if response.status >= 300:
            detail = response.body.decode(errors="replace").strip()
            raise HypervisorError(
                f"cloud-hypervisor refused {endpoint} (HTTP {response.status}): {detail}"
            )
        return response

    def _socket(self, vm_id: str) -> str:
        socket = self._sockets.get(vm_id)
        if socket is None:
            raise HypervisorError(f"no API connection to VM {vm_id}")
        return socket

    async def start(
        self, spec: VmSpec, paths: VmPaths, on_spawn: Callable[[int], None] | None = None
    ) -> int:
        """Spawn the VMM, create and boot the VM."""
        self.check_host()
        for stale in (paths.control_socket, paths.serial_socket):
            stale.unlink(missing_ok=True)
        socket = str(paths.control_socket)
        pid = spawn(
            [self.binary, "--api-socket", f"path={socket}"],
            log_path=paths.hypervisor_log,
            cwd=paths.root,
        )
        if on_spawn is not None:
            on_spawn(pid)
        try:
            await self._wait_for_api(pid, paths)
            await self._call(socket, "PUT", "vm.create", vm_config(spec, paths, self.firmware))
            await self._call(socket, "PUT", "vm.boot")
        except HypervisorError:
            await kill_and_reap(pid)
            raise
        self._sockets[spec.id] = socket
        return pid

    async def _wait_for_api(self, pid: int, paths: VmPaths) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SOCKET_TIMEOUT
        while True:
            if not is_alive(pid):
                await asyncio.sleep(0.05)
                text = paths.hypervisor_log.read_text(errors="replace").strip()[-1500:]
                raise HypervisorError(
                    f"cloud-hypervisor exited during start: {text or 'no output'}"
                )
            if paths.control_socket.exists():
                try:
                    await self._call(str(paths.control_socket), "GET", "vmm.ping")
                    return
                except HypervisorError:
                    pass
            if loop.time() > deadline:
                raise HypervisorError(f"cloud-hypervisor (pid {pid}) API did not answer in time")
            await asyncio.sleep(0.01)

    async def adopt(self, spec: VmSpec, paths: VmPaths, pid: int) -> bool:
        """Check that the VMM at ``pid`` still runs this VM (``vm.info``) and keep its socket."""
        if not owns_process(pid, paths, cmdline_of(pid)):
            return False
        socket = str(paths.control_socket)
        try:
            info = (await self._call(socket, "GET", "vm.info")).json()
        except (HypervisorError, ValueError) as exc:
            log.warning("cannot adopt VM %s (pid %d): %s", spec.id, pid, exc)
            return False
        if info.get("state") not in ("Running", "Paused"):
            return False
        self._sockets[spec.id] = socket
        return True

    async def info(self, vm_id: str) -> dict[str, Any]:
        """``GET vm.info``: the VMM's view of the VM."""
        result: dict[str, Any] = (await self._call(self._socket(vm_id), "GET", "vm.info")).json()
        return result

    async def shutdown(self, vm_id: str) -> None:
        """``PUT vm.shutdown``: stop the VM at once (the VMM process stays)."""
        await self._call(self._socket(vm_id), "PUT", "vm.shutdown")

    async def power_button(self, vm_id: str) -> None:
        """``PUT vm.power-button``."""
        await self._call(self._socket(vm_id), "PUT", "vm.power-button")

    async def attach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """``PUT vm.add-disk``."""
        await self._call(self._socket(vm_id), "PUT", "vm.add-disk", _disk_config(disk))

    async def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        """``PUT vm.remove-device`` with the disk's id."""
        await self._call(self._socket(vm_id), "PUT", "vm.remove-device", {"id": disk.device_id})

    async def attach_nic(self, vm_id: str, nic: NicSpec) -> None:
        """``PUT vm.add-net``."""
        await self._call(self._socket(vm_id), "PUT", "vm.add-net", _net_config(nic))

    async def detach_nic(self, vm_id: str, nic: NicSpec) -> None:
        """``PUT vm.remove-device`` with the NIC's id."""
        await self._call(self._socket(vm_id), "PUT", "vm.remove-device", {"id": nic.device_id})

    async def forget(self, vm_id: str) -> None:
        """Forget the API socket of a VM."""
        self._sockets.pop(vm_id, None)
