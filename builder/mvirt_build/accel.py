"""Whether KVM really runs guests here. `/dev/kvm` existing is not enough: on some hosts
KVM_CREATE_VM succeeds and guests hang (seen on nested hosts: real-mode code runs, a Linux
kernel never prints). The probe boots a kernel under KVM and waits for its first line; without
a kernel it boots a 64 KiB firmware whose reset vector writes one byte to the serial port."""

import json
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger("mvirt_build")

QEMU = "qemu-system-x86_64"
# At the reset vector (0xFFFF0, the last 16 bytes of the image): mov dx,0x3f8; mov al,'K';
# out dx,al; hlt.
PROBE_CODE = bytes.fromhex("baf803b04beef4")
PROBE_TIMEOUT = 3.0


def probe_firmware() -> bytes:
    """A 64 KiB BIOS image that prints 'K' on COM1 and halts."""
    image = bytearray(b"\xf4" * 0x10000)
    image[0xFFF0 : 0xFFF0 + len(PROBE_CODE)] = PROBE_CODE
    return bytes(image)


def accelerator_works(
    accel: str, kernel: Path | None = None, timeout: float = PROBE_TIMEOUT
) -> bool:
    """Boot `kernel` (or the probe firmware) under `accel`; True iff it prints in time."""
    with tempfile.TemporaryDirectory(prefix="mvirt-probe-") as tmp:
        cmd = [QEMU, "-accel", accel, "-m", "128", "-display", "none", "-nodefaults",
               "-serial", "stdio", "-no-reboot"]  # fmt: skip
        if kernel is not None:
            cmd += ["-kernel", str(kernel), "-append", "console=ttyS0 earlyprintk=serial panic=-1"]
            expect = b"Linux version"
        else:
            bios = Path(tmp) / "probe.bin"
            bios.write_bytes(probe_firmware())
            cmd += ["-machine", "pc", "-bios", str(bios)]
            expect = b"K"
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except FileNotFoundError:
            return False
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = time.monotonic() + timeout
        got = b""
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                got += proc.stdout.read() or b""
                if expect in got:
                    return True
                time.sleep(0.05)
            return expect in got
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def choose_accelerator(
    cache_dir: Path, forced: str | None = None, kernel: Path | None = None
) -> str:
    """'kvm' when the probe shows KVM runs guests, else 'tcg'. Remembered until the next
    host reboot; `forced` (or MVIRT_ACCEL) skips the probe."""
    forced = forced or os.environ.get("MVIRT_ACCEL")
    if forced and forced != "auto":
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    memo = cache_dir / "accel.json"
    try:
        known = json.loads(memo.read_text())
        if known.get("boot_id") == _boot_id() and (kernel is None or known.get("kernel")):
            return str(known["accel"])
    except (OSError, ValueError, KeyError):
        pass
    works = accelerator_works("kvm") and (kernel is None or accelerator_works("kvm", kernel, 5.0))
    accel = "kvm" if works else "tcg"
    if accel == "tcg":
        log.info("KVM is present but does not run guests here: using TCG (emulation)")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"boot_id": _boot_id(), "accel": accel, "kernel": bool(kernel)}))
    return accel
