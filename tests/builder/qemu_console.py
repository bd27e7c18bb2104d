"""Boots an image in QEMU (TCG) and watches the serial console for a line.

Only for the firmware-level tests of this folder (ISO layout, Secure Boot refusal), which
boot a small EFI application rather than the built image.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def boot_until(
    args: list[str], serial: Path, markers: tuple[str, ...], timeout: float = 90.0
) -> str:
    """Run qemu-system-x86_64 with `args`, return the console text once any marker appears
    (or at timeout/exit); the VM is stopped either way."""
    cmd = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-display", "none",
        "-no-reboot", "-serial", f"file:{serial}", *args,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    text = ""
    try:
        while time.monotonic() < deadline:
            text = serial.read_text(errors="replace") if serial.exists() else ""
            if any(m in text for m in markers) or proc.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    return serial.read_text(errors="replace") if serial.exists() else text
