"""The cloud-hypervisor backend against a fake VMM that records the exact requests it gets."""

import asyncio
import json
import sys
import tempfile
from pathlib import Path

import pytest

from mvirt.vmm.backend import DiskSpec, HypervisorError, NicSpec, VmPaths, VmSpec
from mvirt.vmm.cloud_hypervisor import CloudHypervisor
from mvirt.vmm.process import ProcessWatch, is_alive, kill

FAKE = Path(__file__).with_name("fake_cloud_hypervisor.py")


@pytest.fixture
def vm_dir():
    # Short path: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="mvch-", dir="/tmp") as tmp:
        yield VmPaths(Path(tmp))


def requests_of(paths: VmPaths, *, pings: bool = False) -> list[dict]:
    lines = (paths.root / "requests.jsonl").read_text().splitlines()
    sent = [json.loads(line) for line in lines]
    return [r for r in sent if pings or r["path"] != "/api/v1/vmm.ping"]


def kernel_spec(tmp: Path) -> VmSpec:
    for name in ("vmlinuz", "initrd", "disk.img"):
        (tmp / name).write_bytes(b"x")
    return VmSpec(
        id="vm-1",
        vcpus=2,
        memory_mb=256,
        boot_kernel=True,
        kernel=str(tmp / "vmlinuz"),
        initramfs=str(tmp / "initrd"),
        cmdline="console=ttyS0",
        disks=(DiskSpec(str(tmp / "disk.img"), readonly=True),),
        nics=(NicSpec(mac="52:54:00:00:00:01", tap="tap0"),),
    )


def run(coro):
    return asyncio.run(coro)


def test_start_sends_create_then_boot_with_the_full_config(vm_dir):
    spec = kernel_spec(vm_dir.root)
    backend = CloudHypervisor(binary=str(FAKE))

    async def go():
        pid = await backend.start(spec, vm_dir)
        try:
            assert is_alive(pid)
            info = await backend.info(spec.id)
            assert info["state"] == "Running"
        finally:
            kill(pid)
            await ProcessWatch(pid).wait()

    run(go())
    # The backend waits for the API with pings, then creates and boots.
    sent = requests_of(vm_dir, pings=True)
    while sent[0]["path"] == "/api/v1/vmm.ping" and sent[1]["path"] == "/api/v1/vmm.ping":
        sent.pop(0)
    assert [(r["method"], r["path"]) for r in sent] == [
        ("GET", "/api/v1/vmm.ping"),
        ("PUT", "/api/v1/vm.create"),
        ("PUT", "/api/v1/vm.boot"),
        ("GET", "/api/v1/vm.info"),
    ]
    assert sent[1]["body"] == {
        "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
        "memory": {"size": 256 * 1024 * 1024, "shared": True},
        "payload": {
            "kernel": spec.kernel,
            "initramfs": spec.initramfs,
            "cmdline": "console=ttyS0",
        },
        "serial": {"mode": "Socket", "socket": str(vm_dir.serial_socket)},
        "console": {"mode": "Off"},
        "rng": {"src": "/dev/urandom"},
        "disks": [{"path": spec.disks[0].path, "readonly": True, "id": spec.disks[0].device_id}],
        "net": [{"mac": "52:54:00:00:00:01", "id": "nic-525400000001", "tap": "tap0"}],
    }
    assert sent[2]["body"] is None


def test_disk_boot_uses_the_firmware_and_vhost_user_nics(vm_dir):
    (vm_dir.root / "disk.img").write_bytes(b"x")
    spec = VmSpec(
        id="vm-2",
        vcpus=1,
        memory_mb=128,
        boot_kernel=False,
        disks=(DiskSpec(str(vm_dir.root / "disk.img")),),
        nics=(NicSpec(mac="52:54:00:00:00:02", vhost_socket="/run/net.sock"),),
        seed_iso=str(vm_dir.seed_iso),
    )
    backend = CloudHypervisor(binary=str(FAKE), firmware="/fw/CLOUDHV.fd")

    async def go():
        pid = await backend.start(spec, vm_dir)
        kill(pid)
        await ProcessWatch(pid).wait()

    run(go())
    body = requests_of(vm_dir)[0]["body"]
    assert body["payload"] == {"firmware": "/fw/CLOUDHV.fd"}
    assert body["disks"][1] == {
        "path": str(vm_dir.seed_iso),
        "readonly": True,
        "id": DiskSpec(str(vm_dir.seed_iso)).device_id,
    }
    assert body["net"] == [
        {
            "mac": "52:54:00:00:00:02",
            "id": "nic-525400000002",
            "vhost_user": True,
            "vhost_socket": "/run/net.sock",
            "vhost_mode": "Client",
        }
    ]


def test_hotplug_power_button_and_adopt(vm_dir):
    spec = kernel_spec(vm_dir.root)
    disk = DiskSpec(str(vm_dir.root / "extra.img"))
    nic = NicSpec(mac="52:54:00:aa:bb:cc", tap="tap9")

    async def go():
        backend = CloudHypervisor(binary=str(FAKE))
        pid = await backend.start(spec, vm_dir)
        watch = ProcessWatch(pid)
        await backend.attach_disk(spec.id, disk)
        await backend.attach_nic(spec.id, nic)
        await backend.detach_disk(spec.id, disk)
        # A daemon restarted later finds the VMM again through its pid and socket.
        other = CloudHypervisor(binary=str(FAKE))
        assert await other.adopt(spec, vm_dir, pid)
        await other.detach_nic(spec.id, nic)
        with pytest.raises(HypervisorError, match="HTTP 404"):
            await other.detach_nic(spec.id, nic)
        await other.shutdown(spec.id)
        assert (await other.info(spec.id))["state"] == "Shutdown"
        await other.power_button(spec.id)
        await asyncio.wait_for(watch.wait(), 5)
        assert not await other.adopt(spec, vm_dir, pid)

    run(go())
    sent = [
        (r["method"], r["path"].removeprefix("/api/v1/"), r["body"]) for r in requests_of(vm_dir)
    ]
    assert sent[2:] == [
        ("PUT", "vm.add-disk", {"path": disk.path, "readonly": False, "id": disk.device_id}),
        ("PUT", "vm.add-net", {"mac": nic.mac, "id": nic.device_id, "tap": "tap9"}),
        ("PUT", "vm.remove-device", {"id": disk.device_id}),
        ("GET", "vm.info", None),
        ("PUT", "vm.remove-device", {"id": nic.device_id}),
        ("PUT", "vm.remove-device", {"id": nic.device_id}),
        ("PUT", "vm.shutdown", None),
        ("GET", "vm.info", None),
        ("PUT", "vm.power-button", None),
    ]


def test_serial_socket_carries_guest_output(vm_dir):
    spec = kernel_spec(vm_dir.root)

    async def go():
        backend = CloudHypervisor(binary=str(FAKE))
        pid = await backend.start(spec, vm_dir)
        try:
            reader, writer = await asyncio.open_unix_connection(str(vm_dir.serial_socket))
            assert await reader.readline() == b"fake guest: booted\r\n"
            writer.write(b"hi\n")
            assert await reader.readline() == b"echo: hi\n"
            writer.close()
            await writer.wait_closed()
        finally:
            kill(pid)
            await ProcessWatch(pid).wait()

    run(go())


def test_missing_binary_is_a_clear_error(vm_dir):
    backend = CloudHypervisor(binary="/nonexistent/cloud-hypervisor")
    with pytest.raises(HypervisorError, match="not found"):
        run(backend.start(kernel_spec(vm_dir.root), vm_dir))


def test_vmm_that_dies_at_start_reports_its_output(vm_dir):
    script = vm_dir.root / "broken-ch"
    script.write_text(f"#!{sys.executable}\nimport sys\nprint('error: bad option')\nsys.exit(2)\n")
    script.chmod(0o755)
    backend = CloudHypervisor(binary=str(script))
    with pytest.raises(HypervisorError, match="bad option"):
        run(backend.start(kernel_spec(vm_dir.root), vm_dir))
