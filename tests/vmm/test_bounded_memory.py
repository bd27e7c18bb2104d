"""Bounded memory in mvirt-vmm: slow or idle clients and chatty guests cannot make the daemon
grow without limit, and its files are private."""

from __future__ import annotations

import stat
import struct
import time

import grpc
import pytest

from mvirt.proto import vmm_pb2 as pb

from .test_api import empty_disk, firmware_vm


def test_a_watcher_that_never_reads_is_dropped_with_a_status(vmm):
    folder = vmm.data_dir.parent
    # Big events (long disk paths) fill the transport's buffers sooner.
    disks = [
        pb.DiskConfig(path=empty_disk(folder / (f"{i:02d}-" + "d" * 200)), readonly=True)
        for i in range(16)
    ]
    # The deadline only ends the test when the daemon never drops the watcher.
    idle = vmm.stub.WatchVms(pb.WatchVmsRequest(), timeout=120)
    idle.initial_metadata()  # subscribed; from now on it never reads until the end
    reader_events = []
    created = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for _ in range(50):
            vm = vmm.stub.CreateVm(
                pb.CreateVmRequest(
                    config=pb.VmConfig(
                        vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_DISK, disks=disks,
                        user_data="#cloud-config\n" + "x" * 1000,
                    )
                )
            )  # fmt: skip
            vmm.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
            created += 1
        if "fell more than" in vmm.daemon.stderr() or "dropped a WatchVms" in vmm.daemon.stderr():
            break
    print("cycles", created)
    with pytest.raises(grpc.RpcError) as info:
        for event in idle:
            reader_events.append(event)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
    assert "dropped" in info.value.details()
    assert reader_events, "the events before the drop are delivered"
    assert all(not e.vm.config.HasField("user_data") for e in reader_events)
    assert len(reader_events) < 2 * created


def multiboot_chatterbox(path) -> str:
    """A 42-byte multiboot kernel that prints 'A' to the serial port forever."""
    magic, flags = 0x1BADB002, 0x00010000  # flags: load address fields are valid
    load = 0x100000
    header = struct.pack(
        "<8I", magic, flags, (-(magic + flags)) & 0xFFFFFFFF, load, load, 0, 0, load + 32
    )
    # mov dx, 0x3f8; loop: mov al, 'A'; out dx, al; jmp loop
    path.write_bytes(header + bytes.fromhex("66baf803b041eeebfb"))
    return str(path)


def test_console_viewers_are_capped(vmm, console_sessions):
    kernel = multiboot_chatterbox(vmm.data_dir.parent / "chatter.bin")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=kernel))
    )
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    sessions = [console_sessions(vmm.stub, vm.id) for _ in range(17)]
    deadline = time.monotonic() + 20
    while not any(s.ended for s in sessions):
        assert time.monotonic() < deadline, "all 17 viewers were let in"
        time.sleep(0.02)
    ended = [s for s in sessions if s.ended]
    assert len(ended) == 1
    assert ended[0].error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "16 console viewers" in ended[0].error.details()
    for session in sessions:
        if session is not ended[0]:
            session.wait_for("AAAA")  # the admitted viewers see the guest
    # A place that frees up can be taken again (the close reaches the daemon soon after).
    next(s for s in sessions if s is not ended[0]).close()
    deadline = time.monotonic() + 20
    while True:
        late = console_sessions(vmm.stub, vm.id)
        while not late.ended and "A" not in late.output:
            time.sleep(0.02)
        if not late.ended:
            break
        assert time.monotonic() < deadline, "the freed place was never given out"


def test_serial_log_is_rotated_while_the_vm_runs(start_vmm):
    limit = 64 * 1024
    vmm = start_vmm("--serial-log-size", str(limit))
    kernel = multiboot_chatterbox(vmm.data_dir.parent / "chatter.bin")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=kernel))
    )
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    folder = vmm.data_dir / "vms" / vm.id
    log, old = folder / "serial.log", folder / "serial.log.1"
    largest = 0
    deadline = time.monotonic() + 60
    rotations: set[int] = set()
    while len(rotations) < 3:  # rotated again and again, not once
        assert time.monotonic() < deadline, f"serial.log: {log.stat().st_size} bytes"
        if old.exists():
            rotations.add(old.stat().st_mtime_ns)
        largest = max(largest, log.stat().st_size)
        time.sleep(0.05)
    assert largest < 4 * limit
    assert set(old.read_bytes()) == {ord("A")}
    assert vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).state == pb.VM_STATE_RUNNING
    vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))


def test_data_dir_and_files_are_private(start_vmm):
    vmm = start_vmm()
    vm = firmware_vm(vmm, user_data="#cloud-config\npassword: secret\n")
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    folder = vmm.data_dir / "vms" / vm.id
    assert stat.S_IMODE(vmm.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = ["vmm.db", f"vms/{vm.id}/cidata.iso", f"vms/{vm.id}/serial.log",
             f"vms/{vm.id}/hypervisor.log", f"vms/{vm.id}/efivars.fd"]  # fmt: skip
    for name in files:
        assert stat.S_IMODE((vmm.data_dir / name).stat().st_mode) == 0o600, name
    # Files an earlier version left readable are made private at the next start.
    vmm.daemon.kill()
    vmm.close()
    (vmm.data_dir / "vmm.db").chmod(0o644)
    vmm.data_dir.chmod(0o755)
    again = start_vmm(data_dir=vmm.data_dir)
    assert stat.S_IMODE(again.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((again.data_dir / "vmm.db").stat().st_mode) == 0o600
