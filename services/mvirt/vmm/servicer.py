"""The VmService gRPC servicer: thin handlers that convert, call :class:`VmManager`, convert
back. Domain errors become status codes in the shared error layer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from mvirt.daemon.errors import InvalidArgumentError, ResourceExhaustedError
from mvirt.daemon.version import package_version
from mvirt.proto import vmm_pb2, vmm_pb2_grpc
from mvirt.vmm.backend import DiskSpec
from mvirt.vmm.convert import (
    config_from_proto,
    event_to_proto,
    system_info_to_proto,
    vm_to_proto,
)
from mvirt.vmm.manager import WATCH_QUEUE, VmManager
from mvirt.vmm.sysinfo import SystemInfoCollector
from mvirt.vmm.validation import check_nic

# Console input chunks larger than this are refused: keystrokes and pastes are far smaller.
MAX_CONSOLE_INPUT = 64 * 1024


class VmServicer(vmm_pb2_grpc.VmServiceServicer):
    """mvirt.VmService over a :class:`VmManager`."""

    def __init__(self, manager: VmManager, stopping: asyncio.Event) -> None:
        self.manager = manager
        self.stopping = stopping
        self.sysinfo = SystemInfoCollector()

    async def GetVersion(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.VersionInfo:
        """The daemon's version."""
        return vmm_pb2.VersionInfo(version=package_version())

    async def GetSystemInfo(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.GetSystemInfoRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.SystemInfo:
        """Host facts plus what the VMs have allocated."""
        cpus, memory = self.manager.allocated()
        return system_info_to_proto(await self.sysinfo.collect(cpus, memory))

    async def CreateVm(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.CreateVmRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Validate and store a new VM (STOPPED)."""
        if not request.HasField("config"):
            raise InvalidArgumentError("config is required")
        name = request.name if request.HasField("name") and request.name else None
        vm = await self.manager.create(name, config_from_proto(request.config))
        return vm_to_proto(vm)

    async def GetVm(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.GetVmRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """One VM."""
        return vm_to_proto(self.manager.get(request.id))

    async def ListVms(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.ListVmsRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.ListVmsResponse:
        """Every VM, oldest first."""
        return vmm_pb2.ListVmsResponse(vms=[vm_to_proto(vm) for vm in self.manager.list()])

    async def DeleteVm(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.DeleteVmRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.DeleteVmResponse:
        """Delete a stopped VM."""
        await self.manager.delete(request.id)
        return vmm_pb2.DeleteVmResponse()

    async def StartVm(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.StartVmRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Start a stopped VM."""
        return vm_to_proto(await self.manager.start(request.id))

    async def StopVm(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.StopVmRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Graceful stop, then kill after the timeout (0 = wait forever)."""
        return vm_to_proto(await self.manager.stop(request.id, request.timeout_seconds))

    async def KillVm(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.KillVmRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Kill the hypervisor at once."""
        return vm_to_proto(await self.manager.kill(request.id))

    async def AttachDisk(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.AttachDiskRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Add a disk (hot-plug when running)."""
        if not request.HasField("disk"):
            raise InvalidArgumentError("disk is required")
        disk = DiskSpec(request.disk.path, request.disk.readonly)
        return vm_to_proto(await self.manager.attach_disk(request.vm_id, disk))

    async def DetachDisk(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.DetachDiskRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Remove a disk by path."""
        return vm_to_proto(await self.manager.detach_disk(request.vm_id, request.path))

    async def AttachNic(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.AttachNicRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Add a NIC (hot-plug when running)."""
        if not request.HasField("nic"):
            raise InvalidArgumentError("nic is required")
        nic = request.nic
        spec = check_nic(
            "nic",
            nic.mac if nic.HasField("mac") else None,
            nic.tap if nic.HasField("tap") else None,
            nic.vhost_socket if nic.HasField("vhost_socket") else None,
        )
        return vm_to_proto(await self.manager.attach_nic(request.vm_id, spec))

    async def DetachNic(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.DetachNicRequest, context: grpc.aio.ServicerContext
    ) -> vmm_pb2.Vm:
        """Remove a NIC by MAC."""
        return vm_to_proto(await self.manager.detach_nic(request.vm_id, request.mac))

    async def Console(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[vmm_pb2.ConsoleInput],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[vmm_pb2.ConsoleOutput]:
        """Bridge the stream to the VM's serial console; the first message names the VM."""
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise InvalidArgumentError("the first ConsoleInput must name the VM (vm_id)")
        hub, viewer = self.manager.console(first.vm_id)

        async def pump_input() -> None:
            if first.data:
                await hub.send(first.data)
            async for message in request_iterator:
                if len(message.data) > MAX_CONSOLE_INPUT:
                    continue  # a misbehaving client must not stall the guest's console
                await hub.send(message.data)

        pump = asyncio.create_task(pump_input())
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            while True:
                chunk_task = asyncio.create_task(viewer.queue.get())
                await asyncio.wait({chunk_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not chunk_task.done():
                    chunk_task.cancel()
                    break
                chunk = chunk_task.result()
                if chunk is None:
                    break
                yield vmm_pb2.ConsoleOutput(data=chunk)
        finally:
            hub.detach(viewer)
            for task in (pump, stopping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                    await task

    async def WatchVms(  # noqa: N802 (gRPC method name)
        self, request: vmm_pb2.WatchVmsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[vmm_pb2.VmEvent]:
        """Lifecycle events from now on, for all VMs or one."""
        vm_id = request.vm_id if request.HasField("vm_id") and request.vm_id else None
        if vm_id is not None:
            vm_id = self.manager.get(vm_id).id
        subscription = self.manager.subscribe()
        stopping = asyncio.create_task(self.stopping.wait())
        try:
            # Headers go out once subscribed: a client that waits for them misses no event.
            await context.send_initial_metadata(())
            while True:
                if subscription.overflowed:
                    raise ResourceExhaustedError(
                        f"this watcher fell more than {WATCH_QUEUE} events behind and was "
                        "dropped; list the VMs again and start a new WatchVms"
                    )
                next_event = asyncio.create_task(subscription.queue.get())
                await asyncio.wait({next_event, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    next_event.cancel()
                    break
                event = next_event.result()
                if event is None:
                    break
                if vm_id is None or event.vm_id == vm_id:
                    yield event_to_proto(event)
        finally:
            stopping.cancel()
            self.manager.unsubscribe(subscription)
