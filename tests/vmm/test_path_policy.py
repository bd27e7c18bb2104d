"""Paths are policy, not trust: what a request may hand to the hypervisor, checked against the
real daemon (image roots, refused places, links, two spellings, option-string injection, NUL
bytes, long ids)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import grpc
import pytest

from mvirt.proto import vmm_pb2 as pb
from mvirt.vmm.path_policy import PathPolicy

from .conftest import short_tmpdir
from .test_api import code_of, empty_disk

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def roots():
    base = short_tmpdir("mvp-")
    images = base / "images"
    images.mkdir()
    yield base, images
    shutil.rmtree(base, ignore_errors=True)


def disk_vm(*paths: str, **config) -> pb.CreateVmRequest:
    return pb.CreateVmRequest(
        config=pb.VmConfig(
            vcpus=1,
            memory_mb=64,
            boot_mode=pb.BOOT_MODE_DISK,
            disks=[pb.DiskConfig(path=p) for p in paths],
            **config,
        )
    )


def test_only_files_under_the_image_roots_reach_a_vm(start_vmm, roots):
    base, images = roots
    vmm = start_vmm("--image-root", str(images), data_dir=base / "data")
    inside = empty_disk(images / "a.img")
    outside = empty_disk(base / "outside.img")
    (images / "passwd").symlink_to("/etc/passwd")
    (images / "db").symlink_to(base / "data" / "vmm.db")
    (images / "escape").symlink_to(outside)
    kernel_cases = {
        "/etc/passwd": "inside /etc",
        str(images / "passwd"): "inside /etc",
        str(images / "db"): "inside " + str(base / "data"),
        "/proc/self/environ": "inside /proc",
        "/sys/kernel/notes": "inside /sys",
        "/dev/null": "in /dev",
        str(images / ".." / "outside.img"): "outside the image roots",
        str(images / "escape"): "outside the image roots",
        outside: "outside the image roots",
    }
    for path, why in kernel_cases.items():
        code, details = code_of(
            vmm.stub.CreateVm,
            pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=path)),
        )
        assert (code, "config.kernel" in details, why in details) == (INVALID, True, True), (
            path,
            details,
        )
    code, details = code_of(vmm.stub.CreateVm, disk_vm(inside, str(images / "escape")))
    assert code == INVALID and "config.disks[1].path" in details and "outside" in details

    # One file under two spellings is one disk.
    (images / "link.img").symlink_to(inside)
    for other in (str(images / "link.img"), str(images) + "//./a.img"):
        code, details = code_of(vmm.stub.CreateVm, disk_vm(inside, other))
        assert code == INVALID and "listed twice" in details, details
    vm = vmm.stub.CreateVm(disk_vm(str(images / "link.img")))
    assert [d.path for d in vm.config.disks] == [inside]  # stored where it really is
    code, _ = code_of(
        vmm.stub.AttachDisk,
        pb.AttachDiskRequest(
            vm_id=vm.id, disk=pb.DiskConfig(path=str(images / ".." / "images/a.img"))
        ),
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, details = code_of(
        vmm.stub.AttachDisk, pb.AttachDiskRequest(vm_id=vm.id, disk=pb.DiskConfig(path=outside))
    )
    assert code == INVALID and "disk.path" in details
    # Detaching by the link finds the disk stored under its real path.
    detached = vmm.stub.DetachDisk(pb.DetachDiskRequest(vm_id=vm.id, path=str(images / "link.img")))
    assert list(detached.config.disks) == []
    assert [v.id for v in vmm.stub.ListVms(pb.ListVmsRequest()).vms] == [vm.id]


def test_no_request_text_reaches_a_qemu_option_string(start_vmm, roots):
    base, images = roots
    vmm = start_vmm("--image-root", str(images), data_dir=base / "data")
    disk = empty_disk(images / "a.img")
    pwned = images / "pwned"
    hostile = f"{images}/vhost.sock,logfile={pwned}"
    code, details = code_of(
        vmm.stub.CreateVm, disk_vm(disk, nics=[pb.NicConfig(vhost_socket=hostile)])
    )
    assert code == INVALID and "config.nics[0].vhost_socket" in details
    vm = vmm.stub.CreateVm(disk_vm(disk))
    code, details = code_of(
        vmm.stub.AttachNic, pb.AttachNicRequest(vm_id=vm.id, nic=pb.NicConfig(vhost_socket=hostile))
    )
    assert code == INVALID and "nic.vhost_socket" in details
    # A link whose target has a comma is judged by its target.
    comma_dir = images / "a,logfile=x"
    comma_dir.mkdir()
    (images / "plain.sock").symlink_to(comma_dir / "s.sock")
    code, details = code_of(
        vmm.stub.AttachNic,
        pb.AttachNicRequest(vm_id=vm.id, nic=pb.NicConfig(vhost_socket=str(images / "plain.sock"))),
    )
    assert code == INVALID and "nic.vhost_socket" in details
    vmm.stub.StartVm(pb.StartVmRequest(id=vm.id))
    vmm.stub.KillVm(pb.KillVmRequest(id=vm.id))
    assert not pwned.exists()
    assert list(vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).config.nics) == []


def test_nul_bytes_are_invalid_and_long_ids_are_echoed_short(start_vmm, roots):
    base, images = roots
    vmm = start_vmm("--image-root", str(images), data_dir=base / "data")
    disk = empty_disk(images / "a.img")
    vm = vmm.stub.CreateVm(disk_vm(disk))
    kernel = empty_disk(images / "vmlinuz")
    for request, field in [
        (disk_vm(disk + "\0.img"), "config.disks[0].path"),
        (
            pb.CreateVmRequest(config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=kernel + "\0")),
            "config.kernel",
        ),
        (
            pb.CreateVmRequest(
                config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=kernel, cmdline="a\0b")
            ),
            "config.cmdline",
        ),
        (
            pb.CreateVmRequest(
                name="a\0b", config=pb.VmConfig(vcpus=1, memory_mb=64, kernel=kernel)
            ),
            "name",
        ),
        (disk_vm(disk, nics=[pb.NicConfig(tap="t\0")]), "config.nics[0].tap"),
    ]:
        code, details = code_of(vmm.stub.CreateVm, request)
        assert (code, field in details, "NUL" in details) == (INVALID, True, True), details
    for call, message in [
        (vmm.stub.GetVm, pb.GetVmRequest(id="x\0y")),
        (vmm.stub.StartVm, pb.StartVmRequest(id="x\0y")),
        (vmm.stub.DetachDisk, pb.DetachDiskRequest(vm_id=vm.id, path=disk + "\0")),
        (vmm.stub.DetachNic, pb.DetachNicRequest(vm_id=vm.id, mac="52:54\0")),
    ]:
        code, details = code_of(call, message)
        assert code == INVALID and "NUL" in details, details
    huge = "x" * 200_000
    for call, message in [
        (vmm.stub.GetVm, pb.GetVmRequest(id=huge)),
        (vmm.stub.DeleteVm, pb.DeleteVmRequest(id=huge)),
        (vmm.stub.DetachDisk, pb.DetachDiskRequest(vm_id=vm.id, path="/" + huge)),
        (vmm.stub.DetachNic, pb.DetachNicRequest(vm_id=vm.id, mac=huge)),
    ]:
        code, details = code_of(call, message)
        assert code == grpc.StatusCode.NOT_FOUND and len(details) < 400, len(details)
    code, details = code_of(vmm.stub.CreateVm, disk_vm("/" + huge))
    assert code == INVALID and len(details) < 600, len(details)
    assert [v.id for v in vmm.stub.ListVms(pb.ListVmsRequest()).vms] == [vm.id]


def test_block_devices_only_through_a_root_in_dev(tmp_path):
    """A root below /dev (as /dev/zvol) admits block devices by the name they were given."""
    if not Path("/dev/loop0").is_block_device():
        pytest.skip("no /dev/loop0 block device here")
    root = Path("/dev") / f"mvirt-test-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    try:
        (root / "vol").symlink_to("/dev/loop0")
        (root / "mem").symlink_to("/dev/null")
        (root / "etc").symlink_to("/etc/passwd")
        policy = PathPolicy.create([str(root), str(tmp_path)], tmp_path / "data")
        assert policy.check("disk", str(root / "vol")) == str(root / "vol")
        for bad in ("/dev/loop0", str(root / "mem"), str(root / "etc"), str(root / "nope")):
            with pytest.raises(Exception, match="disk") as info:
                policy.check("disk", bad)
            assert type(info.value).__name__ == "InvalidArgumentError", bad
    finally:
        for name in ("vol", "mem", "etc"):
            (root / name).unlink(missing_ok=True)
        os.rmdir(root)
