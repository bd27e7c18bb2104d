"""Recovery cannot hang or kill: bounded control calls, one daemon per data dir, and VMs keep
the backend they were started with across a restart with another ``--hypervisor``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc

from mvirt.proto import vmm_pb2 as pb
from tests.conftest import free_port

from .conftest import FAKE_CH, hypervisor_pids
from .test_api import code_of, empty_disk, firmware_vm

FAKE = ("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_a_second_daemon_on_the_same_data_dir_exits_with_one_line(vmm):
    second = subprocess.Popen(
        [sys.executable, "-m", "mvirt.vmm", "--data-dir", str(vmm.data_dir), "--listen",
         f"127.0.0.1:{free_port()}", "--accel", "tcg", "--log-endpoint", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _, stderr = second.communicate(timeout=30)
    finally:
        second.kill()
        second.wait()
    assert second.returncode != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "in use by another mvirt-vmm" in lines[0]
    assert f"pid {vmm.daemon.proc.pid}" in lines[0]
    # The first daemon is unharmed.
    assert vmm.stub.ListVms(pb.ListVmsRequest()).vms == []


def test_a_hypervisor_that_stopped_answering_hangs_neither_calls_nor_recovery(start_vmm):
    vmm = start_vmm("--control-timeout", "1")
    vm = firmware_vm(vmm)
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    [pid] = hypervisor_pids(vmm.data_dir)
    os.kill(pid, signal.SIGSTOP)
    disk = empty_disk(vmm.data_dir.parent / "late.img")
    code, details = code_of(
        lambda r: vmm.stub.AttachDisk(r, timeout=20),
        pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=disk)),
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "did not answer" in details, details
    assert list(vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).config.disks)[1:] == []

    vmm.daemon.kill()
    vmm.close()
    again = start_vmm("--control-timeout", "1", data_dir=vmm.data_dir)  # waits for SERVING
    after = again.stub.GetVm(pb.GetVmRequest(id=vm.id))
    assert after.state == pb.VM_STATE_STOPPED
    assert "could not be re-adopted" in after.stop_reason
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, "the uncontrollable hypervisor is still running"
        time.sleep(0.02)


def test_a_restart_with_another_backend_keeps_the_vms_of_the_first(start_vmm):
    # QEMU VM, then a daemon on the (fake) cloud-hypervisor backend.
    vmm = start_vmm()
    qemu_vm = firmware_vm(vmm)
    vmm.stub.StartVm(pb.StartVmRequest(id=qemu_vm.id))
    [qemu_pid] = hypervisor_pids(vmm.data_dir)
    vmm.daemon.kill()
    vmm.close()

    other = start_vmm(*FAKE, data_dir=vmm.data_dir)
    assert other.stub.GetVm(pb.GetVmRequest(id=qemu_vm.id)).state == pb.VM_STATE_RUNNING
    assert alive(qemu_pid)
    # The new daemon starts new VMs on its own backend, and still drives the QEMU one.
    ch_vm = firmware_vm(other)
    other.stub.StartVm(pb.StartVmRequest(id=ch_vm.id))
    disk = empty_disk(vmm.data_dir.parent / "hot.img")
    hot = other.stub.AttachDisk(
        pb.AttachDiskRequest(vm_id=qemu_vm.id, disk=pb.DiskConfig(path=disk))
    )
    assert [d.path for d in hot.config.disks][1:] == [disk]
    other.daemon.kill()
    other.close()

    # And back to QEMU: the fake cloud-hypervisor (which speaks HTTP, not QMP) is adopted by
    # its own backend instead of hanging the start-up.
    back = start_vmm(data_dir=vmm.data_dir)
    vms = {v.id: v for v in back.stub.ListVms(pb.ListVmsRequest()).vms}
    assert vms[qemu_vm.id].state == pb.VM_STATE_RUNNING
    assert vms[ch_vm.id].state == pb.VM_STATE_RUNNING
    stopped = back.stub.StopVm(pb.StopVmRequest(id=ch_vm.id, timeout_seconds=10))
    assert stopped.stop_reason == "stopped by request (power button)"
    killed = back.stub.KillVm(pb.KillVmRequest(id=qemu_vm.id))
    assert killed.stop_reason == "killed by request"
    deadline = time.monotonic() + 10
    while alive(qemu_pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_lock_is_released_when_the_daemon_ends(start_vmm):
    vmm = start_vmm()
    assert vmm.daemon.terminate() == 0
    vmm.close()
    again = start_vmm(data_dir=vmm.data_dir)
    assert again.stub.ListVms(pb.ListVmsRequest()).vms == []
