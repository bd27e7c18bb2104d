"""How a volume's bytes are stored, chosen once per pool at startup.

* :class:`ZvolBacking`: a ZFS volume; the VM attaches ``/dev/zvol/<dataset>``. Kernel ZFS.
* :class:`FileBacking`: a filesystem dataset per volume holding one sparse raw image,
  ``disk.raw``; the VM attaches that file. zfs-fuse has no zvols, so this is its backing.

Both keep one dataset per volume, so snapshot, clone, rollback, promote and send/receive are
the same ZFS operations on either; only creation, the path and growing differ.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Protocol

from mvirt.zfs.driver import TMP, ZfsDriver
from mvirt.zfs.process import CommandError

IMAGE_FILE = "disk.raw"
ZVOL_DIR = Path("/dev/zvol")
DEVICE_DEADLINE = 10.0


class Backing(Protocol):
    """One way of storing a volume's bytes (see module docstring)."""

    kind: str

    def create_options(self, size: int, blocksize: int) -> list[str]:
        """``zfs create`` options for a new volume dataset."""
        ...

    def path(self, dataset: str) -> Path:
        """What a VM attaches for ``dataset``."""
        ...

    async def materialize(self, dataset: str, size: int) -> None:
        """Makes the path of a freshly created dataset usable."""
        ...

    async def grow(self, dataset: str, size: int) -> None:
        """Grows the volume of ``dataset`` to ``size`` bytes."""
        ...


class FileBacking:
    """A sparse raw image file inside a filesystem dataset per volume."""

    kind = "file"

    def __init__(self, driver: ZfsDriver) -> None:
        self.driver = driver

    def create_options(self, size: int, blocksize: int) -> list[str]:
        """The image's blocks match the requested volblocksize through ``recordsize``."""
        return ["-o", f"recordsize={blocksize}"]

    def path(self, dataset: str) -> Path:
        """``<mount root>/<parent>/<uuid>/disk.raw``."""
        return self.driver.mountpoint(dataset) / IMAGE_FILE

    async def materialize(self, dataset: str, size: int) -> None:
        """Creates the sparse image (no data blocks are written)."""
        path = self.path(dataset)
        await asyncio.to_thread(_create_sparse, path, size)

    async def grow(self, dataset: str, size: int) -> None:
        """Extends the image file; the new tail reads as zeros."""
        await asyncio.to_thread(os.truncate, self.path(dataset), size)


def _create_sparse(path: Path, size: int) -> None:
    with open(path, "xb") as image:
        image.truncate(size)


class ZvolBacking:
    """A ZFS volume per volume (kernel ZFS)."""

    kind = "zvol"

    def __init__(self, driver: ZfsDriver, device_dir: Path = ZVOL_DIR) -> None:
        self.driver = driver
        self.device_dir = device_dir

    def create_options(self, size: int, blocksize: int) -> list[str]:
        """``-V size -o volblocksize=...``; sparse (``-s``): space is used as written."""
        return ["-s", "-V", str(size), "-o", f"volblocksize={blocksize}"]

    def path(self, dataset: str) -> Path:
        """``/dev/zvol/<dataset>`` (udev's link to the zd device)."""
        return self.device_dir / dataset

    async def materialize(self, dataset: str, size: int) -> None:
        """Waits until udev has made the device link."""
        path = self.path(dataset)
        deadline = time.monotonic() + DEVICE_DEADLINE
        while not path.exists():
            if time.monotonic() > deadline:
                raise OSError(f"{path} did not appear within {DEVICE_DEADLINE:.0f} s")
            await asyncio.sleep(0.05)

    async def grow(self, dataset: str, size: int) -> None:
        """``zfs set volsize=...``."""
        await self.driver.set(dataset, "volsize", str(size))


async def detect_backing(driver: ZfsDriver, choice: str = "auto") -> Backing:
    """The backing for ``driver``'s pool: zvols when ``choice`` is ``zvol``, files when it is
    ``file``; ``auto`` creates (and destroys) a probe zvol under ``.tmp`` and uses zvols when
    that works."""
    if choice == "file":
        return FileBacking(driver)
    if choice == "zvol":
        return ZvolBacking(driver)
    probe = driver.dataset(TMP, f"zvol-probe-{uuid.uuid4()}")
    try:
        await driver.create(probe, ["-s", "-V", "1048576"])
    except CommandError:
        # zfs-fuse: "Function not implemented" (its zfs tool may even abort).
        return FileBacking(driver)
    await driver.destroy(probe)
    return ZvolBacking(driver)
