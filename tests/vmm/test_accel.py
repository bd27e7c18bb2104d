"""Accelerator choice: the probe guest really makes QEMU exit; a forced choice never probes."""

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from mvirt.vmm.accel import AcceleratorChoice, kernel_prints, probe_boot_sector

QEMU = "qemu-system-x86_64"


@pytest.mark.skipif(shutil.which(QEMU) is None, reason="QEMU not installed")
def test_probe_sector_exits_qemu_with_status_3_under_tcg(tmp_path):
    disk = tmp_path / "probe.img"
    disk.write_bytes(probe_boot_sector())
    result = subprocess.run(
        [QEMU, "-accel", "tcg", "-machine", "pc", "-m", "32", "-nodefaults", "-display", "none",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
         "-drive", f"file={disk},format=raw,if=ide"],
        timeout=30,
        check=False,
    )  # fmt: skip
    assert result.returncode == 3


def test_forced_accelerator_is_used_without_probing():
    choice = AcceleratorChoice("/nonexistent/qemu", forced="tcg")
    assert asyncio.run(choice.get()) == "tcg"


def test_probe_result_is_cached():
    async def go():
        choice = AcceleratorChoice("/nonexistent/qemu")
        first = await choice.get()
        # A missing binary (or /dev/kvm) means TCG; the second answer comes from the cache.
        assert first == "tcg"
        choice._qemu = QEMU
        assert await choice.get() == first

    asyncio.run(go())


def test_kernel_probe_sees_a_kernel_print_and_rejects_a_non_kernel(tmp_path):
    kernel = Path(__file__).resolve().parents[2] / "build/kernel/bzImage"
    if not kernel.is_file():
        pytest.skip("needs the built kernel (make uos)")
    assert asyncio.run(kernel_prints(QEMU, kernel, timeout=60, accel="tcg"))
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 4096)
    assert not asyncio.run(kernel_prints(QEMU, junk, timeout=10, accel="tcg"))
