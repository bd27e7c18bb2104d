"""Which accelerator the builder's boots use: KVM only when the VM manager's probe (a tiny
guest that must reach its exit port under KVM within seconds) shows KVM really runs guests;
else TCG. The answer is remembered until the host reboots."""

import asyncio
import json
import logging
import os
from pathlib import Path

from mvirt.vmm.accel import kvm_works

log = logging.getLogger("mvirt_build")

QEMU = "qemu-system-x86_64"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def choose_accelerator(cache_dir: Path, forced: str | None = None) -> str:
    """'kvm' or 'tcg'; `forced` (or MVIRT_ACCEL), unless 'auto', skips the probe."""
    forced = forced or os.environ.get("MVIRT_ACCEL")
    if forced and forced != "auto":
        return forced
    memo = cache_dir / "accel.json"
    try:
        known = json.loads(memo.read_text())
        if known.get("boot_id") == _boot_id():
            return str(known["accel"])
    except (OSError, ValueError, KeyError):
        pass
    accel = "kvm" if asyncio.run(kvm_works(QEMU)) else "tcg"
    if accel == "tcg":
        log.info("KVM does not run guests here: using TCG (emulation)")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(json.dumps({"boot_id": _boot_id(), "accel": accel}))
    return accel
