"""Probes that show whether QEMU's KVM accelerator really runs guests, shared by the VM manager
(mvirt-vmm) and the image builder's boots; standard library only, so both can import it.

On some hosts ``/dev/kvm`` exists and ``KVM_CREATE_VM`` succeeds, yet every guest hangs at its
first instruction, so the device node alone proves nothing. The probe boots a 512-byte boot
sector that writes to QEMU's ``isa-debug-exit`` port: QEMU then exits with status 3 at once.
A guest that does not get there within the timeout means KVM does not work; TCG is used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger("mvirt.accel")

# mov al, 1 ; out 0xf4, al ; hlt ; jmp $-1   -> QEMU exits with (1 << 1) | 1 = 3
_PROBE_CODE = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
_PROBE_EXIT_STATUS = 3


def probe_boot_sector() -> bytes:
    """A bootable MBR sector that makes QEMU exit through isa-debug-exit."""
    return _PROBE_CODE.ljust(510, b"\0") + b"\x55\xaa"


async def kvm_works(qemu_binary: str, timeout: float = 3.0) -> bool:
    """Boot the probe sector under KVM; True only when the guest ran within ``timeout``."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="mvirt-kvm-probe-") as tmp:
        disk = Path(tmp) / "probe.img"
        disk.write_bytes(probe_boot_sector())
        argv = [
            qemu_binary,
            "-accel", "kvm",
            "-machine", "pc",
            "-m", "32",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive", f"file={disk},format=raw,if=ide",
        ]  # fmt: skip
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        except OSError as exc:
            log.warning("KVM probe: cannot run %s: %s; using TCG", qemu_binary, exc.strerror)
            return False
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("KVM probe: no exit within %g s; using TCG", timeout)
            return False
    if proc.returncode == _PROBE_EXIT_STATUS:
        return True
    log.warning(
        "KVM probe exited with %s (%s); using TCG",
        proc.returncode,
        err.decode(errors="replace").strip(),
    )
    return False


KERNEL_BANNER = b"Linux version"


async def kernel_prints(
    qemu_binary: str, kernel: Path, timeout: float = 10.0, accel: str = "kvm"
) -> bool:
    """Boot `kernel` under `accel`; True when its first console line arrives within `timeout`.

    The boot-sector probe is not enough everywhere: on some nested hosts SeaBIOS and a boot
    sector (even one that enters long mode) run under KVM while a Linux kernel never prints.
    """
    argv = [qemu_binary, "-accel", accel, "-m", "128", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot", "-kernel", str(kernel),
            "-append", "console=ttyS0 earlyprintk=serial panic=-1"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = b""
    try:
        async with asyncio.timeout(timeout):
            while KERNEL_BANNER not in seen:
                chunk = await proc.stdout.read(4096)
                if not chunk:
                    return False
                seen = (seen + chunk)[-4096:]
            return True
    except TimeoutError:
        return False
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
