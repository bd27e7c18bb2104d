"""VmService against the real daemon and real QEMU (TCG), without booting an OS: a VM whose
only disk is empty sits in the UEFI firmware, which is all the lifecycle checks need."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from mvirt.proto import vmm_pb2
from tests.conftest import free_port

from .conftest import hypervisor_pids

pb = vmm_pb2


def empty_disk(path, size_mb: int = 1) -> str:
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    return str(path)


def firmware_vm(vmm, name: str | None = None, **config) -> pb.Vm:
    disk = empty_disk(vmm.data_dir.parent / f"{name or 'anon'}-{time.monotonic_ns()}.img")
    request = pb.CreateVmRequest(
        config=pb.VmConfig(
            vcpus=1,
            memory_mb=64,
            boot_mode=pb.BOOT_MODE_DISK,
            disks=[pb.DiskConfig(path=disk)],
            **config,
        )
    )
    if name:
        request.name = name
    return vmm.stub.CreateVm(request)


def code_of(call, *args) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args)
    return info.value.code(), info.value.details()


class EventCollector:
    """WatchVms in a thread; ready once the server has subscribed (headers received)."""

    def __init__(self, stub, vm_id: str | None = None) -> None:
        request = pb.WatchVmsRequest()
        if vm_id:
            request.vm_id = vm_id
        self.call = stub.WatchVms(request)
        self.call.initial_metadata()
        self.events: list[pb.VmEvent] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.call:
                self.events.append(event)
        except grpc.RpcError:
            pass

    def kinds(self, count: int, timeout: float = 10) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return [e.type for e in self.events]

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def test_create_get_list_delete(vmm):
    vm = firmware_vm(vmm, "web")
    assert vm.state == pb.VM_STATE_STOPPED and vm.name == "web" and vm.created_at > 0
    assert not vm.HasField("started_at")
    assert vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)) == vm
    assert vmm.stub.GetVm(pb.GetVmRequest(id="web")).id == vm.id
    other = firmware_vm(vmm)
    assert [v.id for v in vmm.stub.ListVms(pb.ListVmsRequest()).vms] == [vm.id, other.id]
    assert (vmm.data_dir / "vms" / vm.id).is_dir()
    vmm.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
    assert not (vmm.data_dir / "vms" / vm.id).exists()
    code, _ = code_of(vmm.stub.GetVm, pb.GetVmRequest(id=vm.id))
    assert code == grpc.StatusCode.NOT_FOUND
    assert [v.id for v in vmm.stub.ListVms(pb.ListVmsRequest()).vms] == [other.id]


def test_malformed_requests_get_precise_codes_and_leave_no_trace(vmm, tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not really a kernel")
    unreadable_dir = tmp_path / "dir"
    unreadable_dir.mkdir()
    disk = empty_disk(tmp_path / "disk.img")
    good = pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel))
    firmware_vm(vmm, "taken")
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    def config(**changes) -> pb.VmConfig:
        c = pb.VmConfig()
        c.CopyFrom(good)
        for key, value in changes.items():
            if key in ("disks", "nics"):
                getattr(c, key).extend(value)
            else:
                setattr(c, key, value)
        return c

    cases = [
        (pb.CreateVmRequest(), invalid, "config is required"),
        (pb.CreateVmRequest(config=config(vcpus=0)), invalid, "config.vcpus"),
        (pb.CreateVmRequest(config=config(vcpus=4096)), invalid, "config.vcpus"),
        (pb.CreateVmRequest(config=config(memory_mb=1)), invalid, "config.memory_mb"),
        (pb.CreateVmRequest(config=config(memory_mb=1 << 40)), invalid, "config.memory_mb"),
        (
            pb.CreateVmRequest(
                config=pb.VmConfig(vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_KERNEL)
            ),
            invalid,
            "config.kernel is required",
        ),
        (
            pb.CreateVmRequest(config=config(kernel=str(tmp_path / "nonexistent"))),
            invalid,
            "does not exist",
        ),
        (pb.CreateVmRequest(config=config(kernel="relative")), invalid, "absolute"),
        (pb.CreateVmRequest(config=config(kernel=str(unreadable_dir))), invalid, "regular file"),
        (pb.CreateVmRequest(config=config(initramfs="/nope")), invalid, "config.initramfs"),
        (pb.CreateVmRequest(config=config(boot_mode=7)), invalid, "config.boot_mode"),
        (
            pb.CreateVmRequest(
                config=pb.VmConfig(vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_DISK)
            ),
            invalid,
            "config.disks is empty",
        ),
        (
            pb.CreateVmRequest(config=config(disks=[pb.DiskConfig(path="/nope.img")])),
            invalid,
            "config.disks[0].path",
        ),
        (
            pb.CreateVmRequest(
                config=config(disks=[pb.DiskConfig(path=disk), pb.DiskConfig(path=disk)])
            ),
            invalid,
            "listed twice",
        ),
        (
            pb.CreateVmRequest(config=config(nics=[pb.NicConfig(mac="zz:zz", tap="t0")])),
            invalid,
            "config.nics[0].mac",
        ),
        (
            pb.CreateVmRequest(
                config=config(nics=[pb.NicConfig(mac="01:00:5e:00:00:01", tap="t")])
            ),
            invalid,
            "multicast",
        ),
        (
            pb.CreateVmRequest(config=config(nics=[pb.NicConfig(mac="52:54:00:00:00:01")])),
            invalid,
            "exactly one of tap or vhost_socket",
        ),
        (
            pb.CreateVmRequest(config=config(nics=[pb.NicConfig(tap="name/with/slash")])),
            invalid,
            "config.nics[0].tap",
        ),
        (
            pb.CreateVmRequest(
                config=config(
                    nics=[
                        pb.NicConfig(mac="52:54:00:00:00:01", tap="a"),
                        pb.NicConfig(mac="52:54:00:00:00:01", tap="b"),
                    ]
                )
            ),
            invalid,
            "used twice",
        ),
        (pb.CreateVmRequest(name="bad name!", config=good), invalid, "name"),
        (pb.CreateVmRequest(name="taken", config=good), grpc.StatusCode.ALREADY_EXISTS, "taken"),
        (pb.CreateVmRequest(config=config(cmdline="a\nb")), invalid, "config.cmdline"),
    ]
    for request, code, text in cases:
        got_code, details = code_of(vmm.stub.CreateVm, request)
        assert (got_code, text in details) == (code, True), (request, got_code, details)

    not_found = grpc.StatusCode.NOT_FOUND
    for call, message, code in [
        (vmm.stub.GetVm, pb.GetVmRequest(id="nope"), not_found),
        (vmm.stub.GetVm, pb.GetVmRequest(), invalid),
        (vmm.stub.StartVm, pb.StartVmRequest(id="nope"), not_found),
        (vmm.stub.StopVm, pb.StopVmRequest(id="nope"), not_found),
        (vmm.stub.KillVm, pb.KillVmRequest(id="taken"), grpc.StatusCode.FAILED_PRECONDITION),
        (vmm.stub.StopVm, pb.StopVmRequest(id="taken"), grpc.StatusCode.FAILED_PRECONDITION),
        (vmm.stub.DeleteVm, pb.DeleteVmRequest(id="nope"), not_found),
        (vmm.stub.AttachDisk, pb.AttachDiskRequest(vm_id="taken"), invalid),
        (
            vmm.stub.AttachDisk,
            pb.AttachDiskRequest(vm_id="taken", disk=pb.DiskConfig(path="/nope")),
            invalid,
        ),
        (vmm.stub.DetachDisk, pb.DetachDiskRequest(vm_id="taken", path="/nope"), not_found),
        (vmm.stub.DetachDisk, pb.DetachDiskRequest(vm_id="taken"), invalid),
        (vmm.stub.AttachNic, pb.AttachNicRequest(vm_id="taken"), invalid),
        (
            vmm.stub.DetachNic,
            pb.DetachNicRequest(vm_id="taken", mac="52:54:00:00:00:09"),
            not_found,
        ),
        (lambda: next(vmm.stub.WatchVms(pb.WatchVmsRequest(vm_id="nope"))), None, not_found),
    ]:
        got_code, details = code_of(call, message) if message is not None else code_of(call)
        assert got_code == code, (message, details)
        assert details

    # Still serving, and nothing but the one valid VM was stored or left on disk.
    vms = vmm.stub.ListVms(pb.ListVmsRequest()).vms
    assert [v.name for v in vms] == ["taken"]
    assert sorted(p.name for p in (vmm.data_dir / "vms").iterdir()) == [vms[0].id]


def test_lifecycle_hotplug_events_and_stop_timeout(vmm, tmp_path):
    events = EventCollector(vmm.stub)
    vm = firmware_vm(vmm, "fw")
    started = vmm.stub.StartVm(pb.StartVmRequest(id="fw"))
    assert started.state == pb.VM_STATE_RUNNING and started.started_at >= vm.created_at
    assert (vmm.data_dir / "vms" / vm.id / "efivars.fd").stat().st_size > 0

    code, details = code_of(vmm.stub.StartVm, pb.StartVmRequest(id=vm.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "RUNNING" in details
    code, details = code_of(vmm.stub.DeleteVm, pb.DeleteVmRequest(id=vm.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "stop or kill" in details

    info = vmm.stub.GetSystemInfo(pb.GetSystemInfoRequest())
    assert (info.allocated_cpus, info.allocated_memory_mb) == (1, 64)

    extra = empty_disk(tmp_path / "extra.img")
    attached = vmm.stub.AttachDisk(
        pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=extra, readonly=True))
    )
    assert [d.path for d in attached.config.disks][1:] == [extra]
    assert attached.config.disks[1].readonly
    code, _ = code_of(
        vmm.stub.AttachDisk, pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=extra))
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS

    # The firmware ignores the power button: the stop timeout ends it.
    stopped = vmm.stub.StopVm(pb.StopVmRequest(id=vm.id, timeout_seconds=1))
    assert stopped.state == pb.VM_STATE_STOPPED
    assert "stop timeout of 1 s" in stopped.stop_reason
    # Hot-plugged disks are persisted in the config.
    assert [d.path for d in vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).config.disks][1:] == [extra]

    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    killed = vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
    assert killed.state == pb.VM_STATE_STOPPED and killed.stop_reason == "killed by request"
    vmm.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
    assert events.kinds(6) == [
        pb.VM_EVENT_CREATED,
        pb.VM_EVENT_STARTED,
        pb.VM_EVENT_STOPPED,
        pb.VM_EVENT_STARTED,
        pb.VM_EVENT_STOPPED,
        pb.VM_EVENT_DELETED,
    ]
    assert {e.vm_id for e in events.events} == {vm.id}
    assert events.events[2].vm.state == pb.VM_STATE_STOPPED
    events.close()


def test_start_failure_is_reported_and_vm_stays_stopped(vmm, tmp_path):
    kernel = tmp_path / "garbage"
    kernel.write_text("not a kernel\n")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel)))
    )
    code, details = code_of(vmm.stub.StartVm, pb.StartVmRequest(id=vm.id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "QEMU exited during start" in details
    after = vmm.stub.GetVm(pb.GetVmRequest(id=vm.id))
    assert after.state == pb.VM_STATE_STOPPED and after.stop_reason.startswith("start failed")


def test_watch_one_vm_only(vmm):
    first = firmware_vm(vmm)
    events = EventCollector(vmm.stub, first.id)
    firmware_vm(vmm)
    vmm.stub.DeleteVm(pb.DeleteVmRequest(id=first.id))
    assert events.kinds(1) == [pb.VM_EVENT_DELETED]
    time.sleep(0.2)
    assert [e.vm_id for e in events.events] == [first.id]
    events.close()


def test_restart_readopts_running_and_stops_dead_vms(start_vmm):
    vmm = start_vmm()
    alive = firmware_vm(vmm, "alive")
    dead = firmware_vm(vmm, "dead")
    for vm in (alive, dead):
        vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    vmm.daemon.kill()  # SIGKILL: no chance to clean up
    vmm.close()
    pids = hypervisor_pids(vmm.data_dir)
    assert len(pids) == 2
    dead_pid = next(pid for pid in pids if dead.id in Path(f"/proc/{pid}/cmdline").read_text())
    os.kill(dead_pid, signal.SIGKILL)
    time.sleep(0.3)

    again = start_vmm(data_dir=vmm.data_dir)
    vms = {v.name: v for v in again.stub.ListVms(pb.ListVmsRequest()).vms}
    assert len(vms) == 2
    assert vms["alive"].state == pb.VM_STATE_RUNNING
    assert vms["dead"].state == pb.VM_STATE_STOPPED
    assert "not running" in vms["dead"].stop_reason
    # The re-adopted VM is fully controlled again: QMP for hot-plug, the pid for kill.
    disk = empty_disk(vmm.data_dir.parent / "late.img")
    again.stub.AttachDisk(pb.AttachDiskRequest(vm_id=alive.id, disk=pb.DiskConfig(path=disk)))
    # A graceful daemon stop (SIGTERM) also leaves the VM running for the next daemon.
    assert again.daemon.terminate() == 0
    again.close()
    third = start_vmm(data_dir=vmm.data_dir)
    assert third.stub.GetVm(pb.GetVmRequest(id=alive.id)).state == pb.VM_STATE_RUNNING
    killed = third.stub.KillVm(pb.KillVmRequest(id=alive.id))
    assert killed.state == pb.VM_STATE_STOPPED
    assert len(third.stub.ListVms(pb.ListVmsRequest()).vms) == 2


def test_data_dir_too_long_for_sockets_is_a_startup_error(tmp_path):
    long_dir = tmp_path / ("x" * 90)
    result = subprocess.run(
        [sys.executable, "-m", "mvirt.vmm", "--data-dir", str(long_dir), "--listen",
         f"127.0.0.1:{free_port()}", "--accel", "tcg"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "too long for the VMs' unix sockets" in result.stderr
    assert "Traceback" not in result.stderr


def test_kill_cuts_short_a_stop_that_waits_forever(vmm):
    vm = firmware_vm(vmm)
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    waiting = vmm.stub.StopVm.future(pb.StopVmRequest(id=vm.id, timeout_seconds=0))
    deadline = time.monotonic() + 10
    while vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).state != pb.VM_STATE_STOPPING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.5)
    assert not waiting.done()  # the firmware ignores the button; timeout 0 waits forever
    killed = vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
    assert killed.state == pb.VM_STATE_STOPPED and killed.stop_reason == "killed by request"
    assert waiting.result(timeout=10).state == pb.VM_STATE_STOPPED
