"""The VM manager's accelerator choice: KVM only when the shared probes (mvirt.accel) show it
really runs guests, decided once per daemon."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from mvirt.accel import kernel_prints, kvm_works, probe_boot_sector

__all__ = ["AcceleratorChoice", "kernel_prints", "kvm_works", "probe_boot_sector"]

log = logging.getLogger("mvirt.vmm.accel")


class AcceleratorChoice:
    """Decides the accelerator once per daemon (the probe costs up to its timeout)."""

    def __init__(self, qemu_binary: str, forced: str | None = None) -> None:
        self._qemu = qemu_binary
        self._value: str | None = forced
        self._lock = asyncio.Lock()

    async def get(self, kernel: str | None = None) -> str:
        """``"kvm"`` or ``"tcg"``; probes on first use and caches the answer. When the first VM
        boots a kernel, that kernel must also print under KVM (see kernel_prints)."""
        async with self._lock:
            if self._value is None:
                works = await kvm_works(self._qemu)
                if works and kernel:
                    works = await kernel_prints(self._qemu, Path(kernel))
                self._value = "kvm" if works else "tcg"
                log.info("QEMU accelerator: %s", self._value)
            return self._value
