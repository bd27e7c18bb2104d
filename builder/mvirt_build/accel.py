"""Which accelerator the builder's boots use: KVM only when the probes it shares with the VM
manager (mvirt.accel) show KVM really runs guests: the boot-sector probe and, since on some
nested hosts that passes while a kernel hangs, a boot of the built kernel that must print within
seconds; else TCG. The answer is remembered until the host reboots."""

import asyncio
import json
import logging
import os
from pathlib import Path

from mvirt.accel import kernel_prints, kvm_works

log = logging.getLogger("mvirt_build")

QEMU = "qemu-system-x86_64"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


async def _kvm_runs(kernel: Path | None) -> bool:
    if not await kvm_works(QEMU):
        return False
    return kernel is None or await kernel_prints(QEMU, kernel)


def choose_accelerator(
    cache_dir: Path, forced: str | None = None, kernel: Path | None = None
) -> str:
    """'kvm' or 'tcg'; `forced` (or MVIRT_ACCEL), unless 'auto', skips the probes."""
    forced = forced or os.environ.get("MVIRT_ACCEL")
    if forced and forced != "auto":
        return forced
    memo = cache_dir / "accel.json"
    probe = "kernel" if kernel is not None else "sector"
    try:
        known = json.loads(memo.read_text())
        if known.get("boot_id") == _boot_id() and known.get("probe") == probe:
            return str(known["accel"])
    except (OSError, ValueError, KeyError):
        pass
    accel = "kvm" if asyncio.run(_kvm_runs(kernel)) else "tcg"
    if accel == "tcg":
        log.info("KVM does not run guests here: using TCG (emulation)")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"boot_id": _boot_id(), "accel": accel, "probe": probe}))
    return accel
