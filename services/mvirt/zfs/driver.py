"""The pool as mvirt-zfs lays it out, driven through ``zfs`` and ``zpool``.

Layout: ``<pool>/volumes/<uuid>``, ``<pool>/templates/<uuid>`` (snapshot ``@img``) and
``<pool>/.tmp`` for imports in progress. The three parents are mounted under one mount root
so that file-backed volumes (see :mod:`mvirt.zfs.backing`) have a path.

Only ``zfs get -Hp`` output is parsed: it is the one machine-readable form that kernel ZFS and
zfs-fuse both print (zfs-fuse has no ``-p`` for ``list``). zfs-fuse reports a dataset busy for
a moment after a file on it was closed, so destroy and rename retry that answer until a
deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mvirt.daemon.errors import UnavailableError
from mvirt.zfs.process import CommandError, run, run_pipeline

log = logging.getLogger("mvirt.zfs.driver")

VOLUMES = "volumes"
TEMPLATES = "templates"
TMP = ".tmp"
TEMPLATE_SNAPSHOT = "img"
# Mount directories of the three parents below the mount root (".tmp" is not hidden there).
MOUNT_DIRS = {VOLUMES: "volumes", TEMPLATES: "templates", TMP: "tmp"}
BUSY_DEADLINE = 90.0  # measured: over 20 s on a loaded 2-core machine
# What zfs prints when there is no ZFS to talk to (zfs-fuse's and kernel ZFS's wording).
_SERVICE_DOWN = (
    "failed to initialize ZFS library",
    "make sure that the zfs-fuse daemon is running",
    "The ZFS modules are not loaded",
)
_BUSY_MARKERS = ("dataset is busy", "pool is busy", "device busy", "is busy")


def is_missing(error: CommandError) -> bool:
    """Whether ``zfs`` failed because the dataset does not exist."""
    return "does not exist" in error.reason or "no such" in error.reason.lower()


def parse_size(value: str) -> int:
    """A ``zfs get -Hp`` numeric value; ``-`` (not applicable) is 0."""
    return int(value) if value.isdigit() else 0


def parse_ratio(value: str) -> float:
    """``1.52x`` (or ``1.52``) as 1.52; anything else as 1.0."""
    try:
        return float(value.rstrip("x"))
    except ValueError:
        return 1.0


def parse_get(output: str) -> dict[str, dict[str, str]]:
    """``zfs get -H -o name,property,value`` output as {dataset: {property: value}}."""
    props: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            props.setdefault(parts[0], {})[parts[1]] = parts[2]
    return props


@dataclass(frozen=True)
class PoolUsage:
    """Space of the pool's root dataset."""

    used: int
    available: int
    compression_ratio: float


class ZfsDriver:
    """Dataset operations on one pool (every call runs ``zfs``; see module docstring)."""

    def __init__(self, pool: str, mount_root: Path, zfs: str = "zfs", zpool: str = "zpool") -> None:
        self.pool = pool
        self.mount_root = mount_root
        self._zfs = zfs
        self._zpool = zpool

    def dataset(self, parent: str, object_id: str) -> str:
        """``<pool>/<parent>/<id>``."""
        return f"{self.pool}/{parent}/{object_id}"

    def mountpoint(self, dataset: str) -> Path:
        """Where a dataset of the layout is mounted."""
        parent, _, rest = dataset.removeprefix(f"{self.pool}/").partition("/")
        return self.mount_root / MOUNT_DIRS[parent] / rest

    async def zfs(self, *args: str) -> str:
        """Runs ``zfs args...`` and returns its output; UnavailableError when the ZFS service
        itself cannot be reached (zfs-fuse stopped, kernel module not loaded)."""
        try:
            return (await run([self._zfs, *args])).stdout
        except CommandError as exc:
            if any(marker in exc.stderr for marker in _SERVICE_DOWN):
                raise UnavailableError(
                    f"ZFS is not reachable ({exc.reason})",
                    hint="start zfs-fuse or load the zfs kernel module, then retry",
                ) from None
            raise

    async def check_pool(self) -> None:
        """Raises CommandError when the pool is not imported (or zfs is not running)."""
        await run([self._zpool, "list", "-H", "-o", "name", self.pool])

    async def ensure_layout(self) -> None:
        """Creates the three parents (mounted under the mount root) where missing."""
        for parent, directory in MOUNT_DIRS.items():
            name = f"{self.pool}/{parent}"
            mountpoint = str(self.mount_root / directory)
            if await self.exists(name):
                props = await self.get([name], ["mountpoint"])
                if props.get(name, {}).get("mountpoint") != mountpoint:
                    await self.zfs("set", f"mountpoint={mountpoint}", name)
            else:
                await self.zfs("create", "-o", f"mountpoint={mountpoint}", name)

    async def exists(self, dataset: str) -> bool:
        """Whether the dataset (or snapshot) exists."""
        try:
            await self.zfs("get", "-H", "-o", "value", "type", dataset)
        except CommandError as exc:
            if is_missing(exc):
                return False
            raise
        return True

    async def get(
        self, datasets: Sequence[str], properties: Iterable[str], *, recursive: bool = False
    ) -> dict[str, dict[str, str]]:
        """Properties of ``datasets`` (and, with ``recursive``, their descendants and
        snapshots) as {dataset: {property: value}}, exact numbers (``-p``)."""
        args = ["get", "-Hp"]
        if recursive:
            args.append("-r")
        args += ["-o", "name,property,value", ",".join(properties), *datasets]
        try:
            return parse_get(await self.zfs(*args))
        except CommandError as exc:
            # Reads take no lock: a dataset deleted meanwhile is simply not in the answer.
            if all("does not exist" in line for line in exc.stderr.splitlines() if line.strip()):
                return parse_get(exc.stdout)
            raise

    async def usage(self) -> PoolUsage:
        """Used and available bytes and the compression ratio of the whole pool."""
        props = (await self.get([self.pool], ["used", "available", "compressratio"]))[self.pool]
        return PoolUsage(
            used=parse_size(props["used"]),
            available=parse_size(props["available"]),
            compression_ratio=parse_ratio(props["compressratio"]),
        )

    async def create(self, dataset: str, options: Sequence[str] = ()) -> None:
        """``zfs create [options] dataset`` (options are ``-o k=v`` / ``-V size`` pairs)."""
        await self.zfs("create", *options, dataset)

    async def set(self, dataset: str, prop: str, value: str) -> None:
        """``zfs set prop=value dataset``."""
        await self.zfs("set", f"{prop}={value}", dataset)

    async def snapshot(self, snapshot: str) -> None:
        """``zfs snapshot dataset@name``."""
        await self.zfs("snapshot", snapshot)

    async def rollback(self, snapshot: str) -> None:
        """Rolls back to ``snapshot``, destroying newer snapshots (``-r``)."""
        await self.zfs("rollback", "-r", snapshot)

    async def clone(self, snapshot: str, dataset: str, options: Sequence[str] = ()) -> None:
        """A copy-on-write clone of ``snapshot``."""
        await self.zfs("clone", *options, snapshot, dataset)

    async def send_receive(self, snapshot: str, dataset: str) -> None:
        """An independent copy of ``snapshot`` as ``dataset`` (``zfs send | zfs receive``)."""
        await run_pipeline([self._zfs, "send", snapshot], [self._zfs, "receive", dataset])

    async def rename(self, old: str, new: str) -> None:
        """Renames a dataset or snapshot (retried while zfs-fuse reports it busy)."""
        await self._retry_busy("rename", old, new)

    async def destroy(self, dataset: str, *, recursive: bool = False) -> None:
        """Destroys a dataset or snapshot (``-r``: with its snapshots); a missing one is fine."""
        args = ["destroy", "-r", dataset] if recursive else ["destroy", dataset]
        try:
            await self._retry_busy(*args)
        except CommandError as exc:
            if not is_missing(exc):
                raise

    async def clones_of(self, dataset: str) -> list[str]:
        """Datasets whose origin is a snapshot of ``dataset`` (in the pool's layout)."""
        parents = [f"{self.pool}/{VOLUMES}", f"{self.pool}/{TEMPLATES}"]
        props = await self.get(parents, ["origin"], recursive=True)
        return sorted(
            name
            for name, values in props.items()
            if "@" not in name and values.get("origin", "-").startswith(f"{dataset}@")
        )

    async def snapshots_of(self, dataset: str) -> list[str]:
        """Full names of the snapshots of ``dataset``."""
        props = await self.get([dataset], ["type"], recursive=True)
        return [name for name in props if name.startswith(f"{dataset}@")]

    async def destroy_keeping_clones(self, dataset: str) -> list[str]:
        """Destroys ``dataset`` and its snapshots; clones of those snapshots are promoted
        first (so they keep their data) and returned."""
        promoted: list[str] = []
        while clones := await self.clones_of(dataset):
            await self.zfs("promote", clones[0])
            promoted.append(clones[0])
        await self.destroy(dataset, recursive=True)
        return promoted

    async def children(self, parent: str) -> list[str]:
        """Direct child datasets of ``<pool>/<parent>``."""
        base = f"{self.pool}/{parent}"
        props = await self.get([base], ["type"], recursive=True)
        return [
            n
            for n in props
            if n.startswith(f"{base}/") and "/" not in n[len(base) + 1 :] and "@" not in n
        ]

    async def _retry_busy(self, *args: str) -> None:
        deadline = time.monotonic() + BUSY_DEADLINE
        while True:
            try:
                await self.zfs(*args)
                return
            except CommandError as exc:
                if not any(m in exc.reason for m in _BUSY_MARKERS) or time.monotonic() > deadline:
                    raise
            # FUSE releases the last file handle asynchronously; ask again shortly.
            await asyncio.sleep(0.1)
