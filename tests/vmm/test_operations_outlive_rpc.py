"""Start and stop belong to the daemon, not to the RPC that asked for them: a client that goes
away (deadline, cancel) neither strands a VM in STARTING/STOPPING nor leaves an unmanaged
hypervisor, and KillVm works in every state that has a hypervisor process."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from mvirt.proto import vmm_pb2 as pb

from .test_api import firmware_vm


def hypervisors_of(vm_id: str) -> list[int]:
    """pids of live processes whose command line names this VM (its hypervisors)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if vm_id.encode() in cmdline and b"qemu" in cmdline:
            pids.append(int(proc.name))
    return pids


def wait_for_state(vmm, vm_id: str, state: int, timeout: float = 15.0) -> pb.Vm:
    deadline = time.monotonic() + timeout
    while True:
        vm = vmm.stub.GetVm(pb.GetVmRequest(id=vm_id))
        if vm.state == state:
            return vm
        if time.monotonic() > deadline:
            pytest.fail(f"VM still {pb.VmState.Name(vm.state)} after {timeout}s: {vm}")
        time.sleep(0.02)


def wait_until_settled(vmm, vm_id: str, timeout: float = 15.0) -> pb.Vm:
    """The VM once it is neither STARTING nor STOPPING."""
    deadline = time.monotonic() + timeout
    while True:
        vm = vmm.stub.GetVm(pb.GetVmRequest(id=vm_id))
        if vm.state in (pb.VM_STATE_STOPPED, pb.VM_STATE_RUNNING):
            return vm
        if time.monotonic() > deadline:
            pytest.fail(f"VM still {pb.VmState.Name(vm.state)} after {timeout}s: {vm}")
        time.sleep(0.02)


def test_a_start_whose_client_went_away_kills_its_hypervisor_and_says_why(vmm):
    # The deadline must strike while the daemon waits for QEMU; how long QEMU needs depends
    # on the machine's load, so shorter and longer deadlines are tried until one does.
    for deadline in (0.15, 0.3, 0.08, 0.5, 0.05, 0.8, 0.2, 1.2):
        vm = firmware_vm(vmm)
        try:
            vmm.stub.StartVm(pb.StartVmRequest(id=vm.id), timeout=deadline)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
            continue
        after = wait_until_settled(vmm, vm.id)
        if after.state == pb.VM_STATE_RUNNING:
            # The start ended just before the deadline struck on the client: a finished start.
            vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
            continue
        assert after.state == pb.VM_STATE_STOPPED
        assert not after.HasField("started_at")
        assert hypervisors_of(vm.id) == []
        if "start cancelled" in after.stop_reason:
            # The VM can start again: nothing of the cancelled start is left over.
            vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
            assert len(hypervisors_of(vm.id)) == 1
            vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
            return
    pytest.fail("no deadline struck while the daemon was waiting for QEMU")


def test_the_stop_timeout_is_kept_after_the_client_went_away(vmm):
    vm = firmware_vm(vmm)
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    with pytest.raises(grpc.RpcError) as info:
        # The firmware ignores the power button: only the daemon's timeout ends this VM.
        vmm.stub.StopVm(pb.StopVmRequest(id=vm.id, timeout_seconds=1), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    stopped = wait_for_state(vmm, vm.id, pb.VM_STATE_STOPPED)
    assert stopped.stop_reason == "killed after the stop timeout of 1 s"
    assert hypervisors_of(vm.id) == []


def test_kill_ends_a_vm_that_is_still_starting(vmm):
    for _ in range(10):
        vm = firmware_vm(vmm)
        starting = vmm.stub.StartVm.future(pb.StartVmRequest(id=vm.id))
        while not starting.done():
            state = vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).state
            if state == pb.VM_STATE_STARTING:
                break
        else:
            vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
            continue  # the start was quicker than the poll: try again
        killed = vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
        if killed.stop_reason != "killed by request":
            # The start finished between GetVm and KillVm: a plain kill of a running VM.
            assert killed.state == pb.VM_STATE_STOPPED
            continue
        assert killed.state == pb.VM_STATE_STOPPED
        with pytest.raises(grpc.RpcError) as info:
            starting.result(timeout=15)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "killed by request" in info.value.details()
        assert hypervisors_of(vm.id) == []
        return
    pytest.fail("never caught a VM in STARTING")
