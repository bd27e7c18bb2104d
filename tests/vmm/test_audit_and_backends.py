"""Every mutation reaches mvirt-log with its related ids; the daemon on the cloud-hypervisor
backend (a fake VMM: the binary cannot be installed here) serves the same API."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from mvirt.proto import log_pb2, log_pb2_grpc, vmm_pb2
from mvirt.vmm.process import is_alive

from .conftest import FAKE_CH, hypervisor_pids

pb = vmm_pb2


def query(log_daemon, object_id: str, want: int, timeout: float = 15) -> list[str]:
    deadline = time.monotonic() + timeout
    with log_daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        while True:
            entries = list(stub.Query(log_pb2.QueryRequest(object_id=object_id, limit=100)))
            if len(entries) >= want or time.monotonic() > deadline:
                return [e.message for e in entries]
            time.sleep(0.1)


def test_mutations_are_audited_with_vm_disk_and_mac_ids(start_log_daemon, start_vmm, tmp_path):
    log_daemon = start_log_daemon()
    vmm = start_vmm("--log-endpoint", log_daemon.endpoint)
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 1024 * 1024)
    extra = tmp_path / "extra.img"
    extra.write_bytes(b"\0" * 1024 * 1024)
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(
            name="audited",
            config=pb.VmConfig(
                vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_DISK,
                disks=[pb.DiskConfig(path=str(disk))],
                nics=[pb.NicConfig(mac="52:54:00:12:34:56", tap="mvtap0")],
            ),
        )
    )  # fmt: skip
    vmm.stub.AttachDisk(pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=str(extra))))
    vmm.stub.DetachNic(pb.DetachNicRequest(vm_id=vm.id, mac="52:54:00:12:34:56"))
    vmm.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))

    by_vm = query(log_daemon, vm.id, 4)
    assert by_vm == [
        "VM audited created",
        f"disk {extra} attached to VM audited",
        "NIC 52:54:00:12:34:56 detached from VM audited",
        "VM audited deleted",
    ]
    assert query(log_daemon, f"disk:{extra}", 3) == by_vm[1:]
    assert query(log_daemon, f"disk:{disk}", 4) == by_vm
    assert query(log_daemon, "52:54:00:12:34:56", 3) == by_vm[:3]


def test_cloud_hypervisor_backend_through_the_daemon(start_vmm, console_sessions, tmp_path):
    vmm = start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel)))
    )
    assert vmm.stub.StartVm(pb.StartVmRequest(id=vm.id)).state == pb.VM_STATE_RUNNING
    console = console_sessions(vmm.stub, vm.id)
    console.wait_for("fake guest: booted")
    console.send("hello\n")
    console.wait_for("echo: hello")
    stopped = vmm.stub.StopVm(pb.StopVmRequest(id=vm.id, timeout_seconds=30))
    assert stopped.stop_reason == "stopped by request (power button)"
    sent = [
        json.loads(line)["path"]
        for line in (vmm.data_dir / "vms" / vm.id / "requests.jsonl").read_text().splitlines()
    ]
    assert [p for p in sent if p != "/api/v1/vmm.ping"] == [
        "/api/v1/vm.create",
        "/api/v1/vm.boot",
        "/api/v1/vm.power-button",
    ]


def test_get_system_info_describes_the_host(vmm):
    info = vmm.stub.GetSystemInfo(pb.GetSystemInfoRequest())
    assert info.total_cpus >= 1 and info.cpu.logical_cores == info.total_cpus
    assert info.total_memory_mb > 0 and info.memory.total_bytes >= info.total_memory_mb << 20
    assert info.host.hostname and info.host.kernel_version and info.host.uptime_seconds > 0
    assert len(info.cpu.cores) == info.total_cpus and info.cpu.flags
    lo = next(n for n in info.nics if n.name == "lo")
    assert lo.is_up and "127.0.0.1/8" in lo.ipv4
    assert (info.allocated_cpus, info.allocated_memory_mb) == (0, 0)
    with pytest.raises(grpc.RpcError):
        vmm.stub.GetVm(pb.GetVmRequest(id="x"))


def test_daemon_killed_during_start_leaves_no_unmanaged_hypervisor(
    start_vmm, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_CH_START_DELAY", "60")
    args = ("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    vmm = start_vmm(*args)
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel)))
    )
    pending = vmm.stub.StartVm.future(pb.StartVmRequest(id=vm.id))
    deadline = time.monotonic() + 10
    while not hypervisor_pids(vmm.data_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    [pid] = hypervisor_pids(vmm.data_dir)  # recorded while the VM is still STARTING
    assert vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).state == pb.VM_STATE_STARTING
    vmm.daemon.kill()
    pending.cancel()
    vmm.close()
    assert is_alive(pid)

    monkeypatch.delenv("FAKE_CH_START_DELAY")
    again = start_vmm(*args, data_dir=vmm.data_dir)
    after = again.stub.GetVm(pb.GetVmRequest(id=vm.id))
    assert after.state == pb.VM_STATE_STOPPED
    assert "could not be re-adopted" in after.stop_reason
    deadline = time.monotonic() + 5
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not is_alive(pid)


def test_failed_starts_are_audited(start_log_daemon, start_vmm, tmp_path):
    log_daemon = start_log_daemon()
    vmm = start_vmm("--log-endpoint", log_daemon.endpoint)
    kernel = tmp_path / "garbage"
    kernel.write_text("not a kernel\n")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(
            name="broken", config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel))
        )
    )
    with pytest.raises(grpc.RpcError) as info:
        vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    messages = query(log_daemon, vm.id, 2)
    assert messages[0] == "VM broken created"
    assert messages[1].startswith("VM broken start failed: QEMU exited during start")
    assert len(messages) == 2


def test_a_hotplug_answered_after_the_vm_exited_keeps_the_newer_state(start_vmm, tmp_path):
    vmm = start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 1024 * 1024)
    extra = tmp_path / "extra.img"
    extra.write_bytes(b"\0" * 1024 * 1024)
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(
            config=pb.VmConfig(
                vcpus=1, memory_mb=64, boot_mode=pb.BOOT_MODE_DISK,
                disks=[pb.DiskConfig(path=str(disk))],
            )
        )
    )  # fmt: skip
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    (vmm.data_dir / "vms" / vm.id / "exit-before-answer").touch()
    vmm.stub.AttachDisk(pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=str(extra))))
    after = vmm.stub.GetVm(pb.GetVmRequest(id=vm.id))
    # The exit was recorded first; the hot-plug the VMM agreed to is kept for the next start.
    assert after.state == pb.VM_STATE_STOPPED and after.stop_reason == "guest powered off"
    assert [d.path for d in after.config.disks] == [str(disk), str(extra)]
    (vmm.data_dir / "vms" / vm.id / "exit-before-answer").unlink()
    assert vmm.stub.StartVm(pb.StartVmRequest(id=vm.id)).state == pb.VM_STATE_RUNNING
    assert vmm.stub.KillVm(pb.KillVmRequest(id=vm.id)).state == pb.VM_STATE_STOPPED
