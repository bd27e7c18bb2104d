"""The QEMU backend: its command line, and a real QEMU process driven over QMP (no guest OS:
these checks need the hypervisor, not a booted kernel)."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mvirt.vmm.backend import DiskSpec, HypervisorError, NicSpec, VmPaths, VmSpec
from mvirt.vmm.process import ProcessWatch, is_alive, kill
from mvirt.vmm.qemu import OVMF_CODE, QemuHypervisor, build_argv

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or not Path(OVMF_CODE).exists(),
    reason="qemu-system-x86 and ovmf are not installed",
)


@pytest.fixture
def paths():
    with tempfile.TemporaryDirectory(prefix="mvq-", dir="/tmp") as tmp:
        yield VmPaths(Path(tmp))


def test_kernel_boot_command_line(paths):
    spec = VmSpec(
        id="v1", vcpus=2, memory_mb=256, boot_kernel=True, kernel="/k", initramfs="/i",
        cmdline="console=ttyS0 quiet", disks=(DiskSpec("/d,x", readonly=True),),
        nics=(NicSpec("52:54:00:00:00:01", tap="tap0"),), seed_iso="/s.iso",
    )  # fmt: skip
    argv = build_argv("qemu", "tcg", spec, paths)
    joined = " ".join(argv)
    assert argv[argv.index("-kernel") + 1] == "/k"
    assert argv[argv.index("-initrd") + 1] == "/i"
    assert argv[argv.index("-append") + 1] == "console=ttyS0 quiet"
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert "pflash" not in joined
    # Paths go into -blockdev as JSON, so a comma in a file name cannot inject options.
    blockdevs = [argv[i + 1] for i, a in enumerate(argv) if a == "-blockdev"]
    assert '"filename": "/d,x"' in blockdevs[0] and '"read-only": true' in blockdevs[0]
    assert '"filename": "/s.iso"' in blockdevs[1] and '"read-only": true' in blockdevs[1]
    assert "tap,id=nic-525400000001-net,ifname=tap0,script=no,downscript=no" in argv
    assert f"unix:{paths.control_socket},server=on,wait=off" in argv


def test_disk_boot_uses_ovmf_and_a_per_vm_variable_store(paths):
    spec = VmSpec(id="v2", vcpus=1, memory_mb=128, boot_kernel=False, disks=(DiskSpec("/d"),))
    argv = build_argv("qemu", "kvm", spec, paths)
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}" in argv
    assert f"if=pflash,format=raw,unit=1,file={paths.efi_vars}" in argv
    assert argv[argv.index("-cpu") + 1] == "host"
    assert any("bootindex=0" in a for a in argv)
    assert "-kernel" not in argv


@needs_qemu
def test_real_qemu_qmp_hotplug_and_kill(paths):
    boot = paths.root / "boot.img"
    boot.write_bytes(b"\0" * 1024 * 1024)
    extra = paths.root / "extra.img"
    extra.write_bytes(b"\0" * 1024 * 1024)
    spec = VmSpec(id="v3", vcpus=1, memory_mb=64, boot_kernel=False, disks=(DiskSpec(str(boot)),))

    async def go():
        backend = QemuHypervisor(accel="tcg")
        pid = await backend.start(spec, paths)
        try:
            await exercise(backend, pid)
        finally:
            kill(pid)

    async def exercise(backend, pid):
        watch = ProcessWatch(pid)
        assert paths.efi_vars.stat().st_size == Path(backend.ovmf_vars).stat().st_size
        await backend.attach_disk(spec.id, DiskSpec(str(extra), readonly=True))
        client = backend._qmp[spec.id]
        devices = await client.execute("query-pci")
        ids = {d.get("qdev_id") for bus in devices for d in bus["devices"]}
        assert DiskSpec(str(extra)).device_id in ids
        with pytest.raises(HypervisorError, match="refused blockdev-add"):
            await backend.attach_disk(spec.id, DiskSpec(str(extra)))
        await backend.power_button(spec.id)  # accepted even though no OS listens
        # A second backend (a restarted daemon) re-adopts the process after the first let go.
        await backend.forget(spec.id)
        other = QemuHypervisor(accel="tcg")
        assert await other.adopt(spec, paths, pid)
        await other.forget(spec.id)
        kill(pid)
        assert await asyncio.wait_for(watch.wait(), 10) == -9
        assert not is_alive(pid)
        assert not await other.adopt(spec, paths, pid)

    asyncio.run(go())


@needs_qemu
def test_qemu_start_failure_reports_qemu_output(paths):
    spec = VmSpec(
        id="v4", vcpus=1, memory_mb=64, boot_kernel=True, kernel=str(paths.root / "missing")
    )
    with pytest.raises(HypervisorError, match=r"exited during start: .*missing"):
        asyncio.run(QemuHypervisor(accel="tcg").start(spec, paths))


NIC_SCRIPT = """
import asyncio, json, os, sys
from pathlib import Path
from mvirt.vmm.backend import DiskSpec, NicSpec, VmPaths, VmSpec
from mvirt.vmm.process import ProcessWatch, kill
from mvirt.vmm.qemu import QemuHypervisor

async def main():
    paths = VmPaths(Path(sys.argv[1]))
    boot = paths.root / "boot.img"
    boot.write_bytes(bytes(1024 * 1024))
    spec = VmSpec(id="n1", vcpus=1, memory_mb=64, boot_kernel=False, disks=(DiskSpec(str(boot)),),
                  nics=(NicSpec("52:54:00:00:00:a1", tap="mvtap0"),))
    backend = QemuHypervisor(accel="tcg")
    pid = await backend.start(spec, paths)
    watch = ProcessWatch(pid)
    try:
        await backend.attach_nic("n1", NicSpec("52:54:00:00:00:a2", tap="mvtap1"))
        pci = await backend._qmp["n1"].execute("query-pci")
        ids = sorted(d.get("qdev_id") for bus in pci for d in bus["devices"] if d.get("qdev_id"))
        print(json.dumps({"devices": ids, "links": sorted(os.listdir("/sys/class/net"))}))
    finally:
        await backend.forget("n1")
        kill(pid)
        await watch.wait()

asyncio.run(main())
"""


@needs_qemu
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or not Path("/dev/net/tun").exists(),
    reason="needs root, iproute2 and /dev/net/tun for a network namespace with TAP devices",
)
def test_real_qemu_tap_nics_and_nic_hotplug_in_a_network_namespace(paths):
    namespace = f"mvirt-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        script = paths.root / "nic.py"
        script.write_text(NIC_SCRIPT)
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, str(script), str(paths.root)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert {"nic-5254000000a1", "nic-5254000000a2"} <= set(seen["devices"])
        assert {"mvtap0", "mvtap1"} <= set(seen["links"])
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=True)
