"""Boots on QEMU (TCG): a kernel + busybox initramfs guest driven through the Console stream,
and the project's UKI booted from a disk by OVMF. Each boot is reused for several checks."""

from __future__ import annotations

import time

import grpc
import pytest

from mvirt.proto import vmm_pb2

from .guest import PROMPT, READY, find_kernel, find_uki, make_esp_disk, make_initramfs

pb = vmm_pb2
pytestmark = pytest.mark.e2e

UKI_READY = "pideisn: ready"
WAIT_DISK = "for i in $(seq 30); do [ -e /sys/block/{0} ] && break; sleep 0.5; done; "
WAIT_GONE = "for i in $(seq 30); do [ -e /sys/block/{0} ] || break; sleep 0.5; done; "


@pytest.fixture(scope="module")
def kernel_guest(tmp_path_factory):
    kernel = find_kernel()
    if kernel is None:
        pytest.skip("no kernel: run `make kernel` (build/bzImage) or set MVIRT_TEST_KERNEL")
    initramfs = make_initramfs(tmp_path_factory.mktemp("guest") / "initramfs.cpio")
    return kernel, initramfs


def test_kernel_boot_console_seed_hotplug_and_readoption(
    start_vmm, console_sessions, kernel_guest, tmp_path
):
    kernel, initramfs = kernel_guest
    vmm = start_vmm()
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(
            name="busybox",
            config=pb.VmConfig(
                vcpus=1,
                memory_mb=256,
                kernel=str(kernel),
                initramfs=str(initramfs),
                cmdline="console=ttyS0 panic=-1",
                user_data="#cloud-config\nhostname: busybox\n",
            ),
        )
    )
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))

    # The console shows the boot; input reaches the guest's shell.
    first = console_sessions(vmm.stub, vm.id)
    first.wait_for(READY, timeout=120)
    first.wait_for(PROMPT)
    first.send("echo sum=$((6*7))\n")
    first.wait_for("sum=42")

    # The cloud-init seed is the only disk at boot: read-only and labelled cidata.
    first.send("echo seed=$(findfs LABEL=cidata) ro=$(cat /sys/block/vda/ro)\n")
    first.wait_for("seed=/dev/vda ro=1")

    # A viewer attaching late sees the scrollback, then live output like everyone else.
    second = console_sessions(vmm.stub, vm.id)
    second.wait_for(READY)

    # Hot-plug: the disk appears in the running guest with its size.
    extra = tmp_path / "extra.img"
    extra.write_bytes(b"\0" * 8 * 1024 * 1024)
    attached = vmm.stub.AttachDisk(
        pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=str(extra)))
    )
    assert [d.path for d in attached.config.disks] == [str(extra)]
    first.send(WAIT_DISK.format("vdb") + "echo hotplug=$(cat /sys/block/vdb/size)\n")
    first.wait_for("hotplug=16384")
    second.wait_for("hotplug=16384")

    # kill -9 of the daemon; the VM keeps running and the next daemon adopts it.
    vmm.daemon.kill()
    first.wait_ended()
    again = start_vmm(data_dir=vmm.data_dir)
    assert again.stub.GetVm(pb.GetVmRequest(id=vm.id)).state == pb.VM_STATE_RUNNING
    third = console_sessions(again.stub, vm.id)
    third.wait_for("hotplug=16384")  # scrollback survives through the serial log
    third.send("echo back=$((40+2))\n")
    third.wait_for("back=42")

    # Hot-unplug through the adopted QMP connection; the guest lets the disk go.
    detached = again.stub.DetachDisk(pb.DetachDiskRequest(vm_id=vm.id, path=str(extra)))
    assert list(detached.config.disks) == []
    third.send(WAIT_GONE.format("vdb") + "echo unplugged=$(ls /sys/block | grep -c vdb)\n")
    third.wait_for("unplugged=0")

    killed = again.stub.KillVm(pb.KillVmRequest(id=vm.id))
    assert killed.state == pb.VM_STATE_STOPPED
    third.wait_ended()
    with pytest.raises(grpc.RpcError) as info:
        next(again.stub.Console(iter([pb.ConsoleInput(vm_id=vm.id)])))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    again.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))


def test_uki_disk_boot_reaches_ready_and_stops_gracefully(vmm, console_sessions, tmp_path):
    uki = find_uki()
    if uki is None:
        pytest.skip("no UKI: run `make uos` (build/mvirt-uos.efi) or set MVIRT_TEST_UKI")
    disk = make_esp_disk(uki, tmp_path / "esp.img")
    vm = vmm.stub.CreateVm(
        pb.CreateVmRequest(
            name="uos",
            config=pb.VmConfig(
                vcpus=1, memory_mb=512, boot_mode=pb.BOOT_MODE_DISK,
                disks=[pb.DiskConfig(path=str(disk))],
            ),
        )
    )  # fmt: skip
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    console = console_sessions(vmm.stub, vm.id)
    console.wait_for(UKI_READY, timeout=180)

    # pideisn powers off on the ACPI power button: the stop ends well before the timeout.
    begin = time.monotonic()
    stopped = vmm.stub.StopVm(pb.StopVmRequest(id=vm.id, timeout_seconds=60))
    assert stopped.state == pb.VM_STATE_STOPPED
    assert stopped.stop_reason == "stopped by request (power button)", stopped.stop_reason
    assert time.monotonic() - begin < 60
