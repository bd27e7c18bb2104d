"""Which hypervisor mvirt-vmm runs VMs on, where the node image has only cloud-hypervisor
(here the named fake) and no QEMU, and what StartVm says when the host lacks something."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from mvirt.daemon.config import build_parser
from mvirt.proto import vmm_pb2 as pb
from mvirt.vmm import locations
from mvirt.vmm.daemon import add_arguments
from tests.vmm.conftest import FAKE_CH


@pytest.fixture
def only_cloud_hypervisor(tmp_path, monkeypatch) -> Path:
    """PATH holds cloud-hypervisor (the fake) and nothing else: no QEMU."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "cloud-hypervisor").symlink_to(FAKE_CH)
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


@pytest.fixture
def no_hypervisor(tmp_path, monkeypatch) -> None:
    bindir = tmp_path / "empty-bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))


def create_kernel_vm(vmm, tmp_path: Path) -> pb.Vm:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    config = pb.VmConfig(vcpus=1, memory_mb=64, kernel=str(kernel))
    vm: pb.Vm = vmm.stub.CreateVm(pb.CreateVmRequest(name="node-vm", config=config))
    return vm


def start_error(vmm, vm_id: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failed:
        vmm.stub.StartVm(pb.StartVmRequest(id=vm_id))
    return failed.value


def test_auto_chooses_cloud_hypervisor_when_it_is_the_only_hypervisor(
    only_cloud_hypervisor, start_vmm, tmp_path
):
    vmm = start_vmm("--hypervisor", "auto")
    assert "hypervisor backend: cloud-hypervisor" in vmm.daemon.stderr()
    vm = create_kernel_vm(vmm, tmp_path)
    assert vmm.stub.StartVm(pb.StartVmRequest(id=vm.id)).state == pb.VM_STATE_RUNNING
    # The fake served the VM: it logs the REST calls it received in the VM's folder.
    assert (vmm.data_dir / "vms" / vm.id / "requests.jsonl").is_file()
    assert vmm.stub.KillVm(pb.KillVmRequest(id=vm.id)).state == pb.VM_STATE_STOPPED


def test_without_kvm_start_is_a_failed_precondition_and_the_daemon_serves(
    only_cloud_hypervisor, start_vmm, tmp_path
):
    absent = str(tmp_path / "no-kvm")
    vmm = start_vmm("--hypervisor", "auto", "--kvm-device", absent)
    vm = create_kernel_vm(vmm, tmp_path)
    error = start_error(vmm, vm.id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "KVM is not available" in error.details() and absent in error.details()
    after = vmm.stub.GetVm(pb.GetVmRequest(id=vm.id))
    assert after.state == pb.VM_STATE_STOPPED and "KVM" in after.stop_reason
    assert vmm.stub.GetSystemInfo(pb.GetSystemInfoRequest()).total_cpus >= 1


def test_without_any_hypervisor_the_daemon_serves_and_start_names_the_binary(
    no_hypervisor, start_vmm, tmp_path
):
    vmm = start_vmm("--hypervisor", "auto")
    assert "hypervisor backend: cloud-hypervisor" in vmm.daemon.stderr()
    vm = create_kernel_vm(vmm, tmp_path)
    assert [v.id for v in vmm.stub.ListVms(pb.ListVmsRequest()).vms] == [vm.id]
    assert vmm.stub.GetSystemInfo(pb.GetSystemInfoRequest()).total_cpus >= 1
    error = start_error(vmm, vm.id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"cloud-hypervisor binary {locations.CLOUD_HYPERVISOR!r} not found" in error.details()
    # Nothing half-done: the VM is STOPPED, can be deleted, and the daemon keeps serving.
    assert vmm.stub.GetVm(pb.GetVmRequest(id=vm.id)).state == pb.VM_STATE_STOPPED
    vmm.stub.DeleteVm(pb.DeleteVmRequest(id=vm.id))
    assert list(vmm.stub.ListVms(pb.ListVmsRequest()).vms) == []


def test_an_explicit_backend_whose_binary_is_missing_fails_at_start_not_at_startup(
    start_vmm, tmp_path
):
    vmm = start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", "/nonexistent/ch")
    vm = create_kernel_vm(vmm, tmp_path)
    error = start_error(vmm, vm.id)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'/nonexistent/ch' not found" in error.details()


def test_defaults_are_the_node_image_locations(no_hypervisor):
    parser = build_parser("vmm", 50051, "test", add_arguments)
    options = parser.parse_args([])
    assert options.ch_binary == locations.CLOUD_HYPERVISOR  # nothing on PATH
    assert options.ch_firmware == locations.CLOUDHV_FIRMWARE == "/usr/share/mvirt/CLOUDHV.fd"
    assert options.kvm_device == "/dev/kvm"
    assert locations.CLOUD_HYPERVISOR == "/usr/bin/cloud-hypervisor"


def test_cloud_hypervisor_on_path_is_preferred_over_the_image_location(only_cloud_hypervisor):
    assert locations.default_ch_binary() == os.path.join(only_cloud_hypervisor, "cloud-hypervisor")
