"""The storage manager: volumes, snapshots and templates on one pool, above the driver, the
volume backing and the store. The gRPC servicer is a thin layer over this class.

Concurrency: every mutation holds one lock (``self.lock``) from its checks to its last store
write, so two requests never race for a name or a dataset; reads take no lock. An import job
(:mod:`mvirt.zfs.imports`) works unlocked on its own dataset under ``.tmp`` and takes the lock
only to publish the finished template. Every mutation undoes what it did on failure, so a
failed request leaves no dataset, file or row behind.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mvirt.daemon.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from mvirt.zfs.backing import Backing
from mvirt.zfs.driver import (
    TEMPLATE_SNAPSHOT,
    TEMPLATES,
    VOLUMES,
    ZfsDriver,
    parse_ratio,
    parse_size,
)
from mvirt.zfs.inuse import holders
from mvirt.zfs.model import SnapshotRecord, TemplateRecord, VolumeRecord, now_iso
from mvirt.zfs.process import CommandError
from mvirt.zfs.store import ZfsStore
from mvirt.zfs.validation import (
    DEFAULT_BLOCKSIZE,
    check_blocksize,
    check_name,
    check_size,
)

log = logging.getLogger("mvirt.zfs.manager")

AUDIT_LEVEL = 4  # mvirt.log.LogLevel.AUDIT


class AuditLog(Protocol):
    """What the manager needs from the shared audit client."""

    def log(self, level: int, message: str, related_ids: Iterable[str] = ()) -> str:
        """Records one audit entry without blocking."""
        ...


class StorageError(FailedPreconditionError):
    """ZFS refused an operation; the message carries its reason."""


@dataclass(frozen=True)
class SnapshotView:
    """A snapshot with its dataset name and space."""

    record: SnapshotRecord
    full_name: str
    used: int


@dataclass(frozen=True)
class VolumeView:
    """A volume with what ZFS reports about it."""

    record: VolumeRecord
    path: str
    used: int
    compression_ratio: float
    snapshots: list[SnapshotView]


@dataclass(frozen=True)
class TemplateView:
    """A template with its snapshot and clone count."""

    record: TemplateRecord
    snapshot_path: str
    clone_count: int


@dataclass(frozen=True)
class PoolView:
    """GetPoolStats."""

    name: str
    total: int
    available: int
    used: int
    provisioned: int
    compression_ratio: float


@dataclass(frozen=True)
class RollbackResult:
    """The volume after a rollback and the snapshots that were destroyed."""

    volume: VolumeView
    destroyed: list[str]


def _zfs_failed(action: str, exc: CommandError) -> StorageError:
    return StorageError(f"{action} failed: zfs says {exc.reason!r}")


class StorageManager:
    """Volumes, snapshots and templates (see module docstring)."""

    def __init__(
        self, driver: ZfsDriver, backing: Backing, store: ZfsStore, audit: AuditLog
    ) -> None:
        self.driver = driver
        self.backing = backing
        self.store = store
        self.audit = audit
        self.lock = asyncio.Lock()

    def _audit(self, message: str, *related: str) -> None:
        self.audit.log(AUDIT_LEVEL, message, related)

    # Lookups.

    def volume_record(self, name: str, field: str = "name") -> VolumeRecord:
        """The volume called ``name`` or NOT_FOUND naming ``field``."""
        volume = self.store.volume_by_name(check_name(name, field))
        if volume is None:
            raise NotFoundError(f"{field}: no volume is named {name!r}; see `mvirt volume list`")
        return volume

    def template_record(self, name: str, field: str = "name") -> TemplateRecord:
        """The template called ``name`` or NOT_FOUND naming ``field``."""
        template = self.store.template_by_name(check_name(name, field))
        if template is None:
            raise NotFoundError(
                f"{field}: no template is named {name!r}; see `mvirt template list`"
            )
        return template

    def snapshot_record(self, volume: VolumeRecord, name: str, field: str) -> SnapshotRecord:
        """The volume's snapshot called ``name`` or NOT_FOUND naming ``field``."""
        check_name(name, field)
        for snapshot in self.store.snapshots(volume.id):
            if snapshot.name == name:
                return snapshot
        raise NotFoundError(
            f"{field}: volume {volume.name!r} has no snapshot {name!r}; "
            f"see `mvirt snapshot list {volume.name}`"
        )

    def volume_dataset(self, volume_id: str) -> str:
        """``<pool>/volumes/<id>``."""
        return self.driver.dataset(VOLUMES, volume_id)

    def template_dataset(self, template_id: str) -> str:
        """``<pool>/templates/<id>``."""
        return self.driver.dataset(TEMPLATES, template_id)

    def template_snapshot(self, template_id: str) -> str:
        """Where a template's clones come from: ``<pool>/templates/<id>@img``."""
        return f"{self.template_dataset(template_id)}@{TEMPLATE_SNAPSHOT}"

    # Views.

    async def _volume_views(self, volumes: list[VolumeRecord]) -> list[VolumeView]:
        if not volumes:
            return []
        datasets = [self.volume_dataset(v.id) for v in volumes]
        props = await self.driver.get(datasets, ["used", "compressratio"], recursive=True)
        views = []
        for volume, dataset in zip(volumes, datasets, strict=True):
            own = props.get(dataset, {})
            snapshots = [
                SnapshotView(
                    record=s,
                    full_name=f"{dataset}@{s.id}",
                    used=parse_size(props.get(f"{dataset}@{s.id}", {}).get("used", "0")),
                )
                for s in self.store.snapshots(volume.id)
            ]
            views.append(
                VolumeView(
                    record=volume,
                    path=str(self.backing.path(dataset)),
                    used=parse_size(own.get("used", "0")),
                    compression_ratio=parse_ratio(own.get("compressratio", "1.00x")),
                    snapshots=snapshots,
                )
            )
        return views

    async def volume_view(self, volume: VolumeRecord) -> VolumeView:
        """One volume as the API shows it."""
        return (await self._volume_views([volume]))[0]

    async def get_volume(self, name: str) -> VolumeView:
        """GetVolume."""
        return await self.volume_view(self.volume_record(name))

    async def list_volumes(self) -> list[VolumeView]:
        """ListVolumes, oldest first."""
        return await self._volume_views(self.store.volumes())

    def template_view(self, template: TemplateRecord) -> TemplateView:
        """One template as the API shows it."""
        return TemplateView(
            record=template,
            snapshot_path=self.template_snapshot(template.id),
            clone_count=self.store.clone_count(template.id),
        )

    def list_templates(self) -> list[TemplateView]:
        """ListTemplates, oldest first."""
        return [self.template_view(t) for t in self.store.templates()]

    async def list_snapshots(self, volume_name: str) -> list[SnapshotView]:
        """ListSnapshots of one volume, oldest first."""
        volume = self.volume_record(volume_name, "volume_name")
        return (await self.volume_view(volume)).snapshots

    async def pool_stats(self) -> PoolView:
        """GetPoolStats: the pool root's space plus what the volumes promise."""
        usage = await self.driver.usage()
        return PoolView(
            name=self.driver.pool,
            total=usage.used + usage.available,
            available=usage.available,
            used=usage.used,
            provisioned=sum(v.volsize for v in self.store.volumes()),
            compression_ratio=usage.compression_ratio,
        )

    async def remove_orphans(self) -> list[str]:
        """Destroys volume and template datasets that have no row: what a crash between
        creating a dataset and storing its row left behind. Called at startup, before any
        request; a dataset that cannot go yet (still busy) is logged and tried next time."""
        known = {self.volume_dataset(v.id) for v in self.store.volumes()}
        known |= {self.template_dataset(t.id) for t in self.store.templates()}
        removed = []
        for parent in (VOLUMES, TEMPLATES):
            for dataset in await self.driver.children(parent):
                if dataset in known:
                    continue
                log.warning("removing dataset without a record", extra={"dataset": dataset})
                try:
                    await self.driver.destroy(dataset, recursive=True)
                except CommandError as exc:
                    log.error("cannot remove %s: %s", dataset, exc.reason)
                    continue
                removed.append(dataset)
        return removed

    # Volumes.

    def _check_new_volume_name(self, name: str, field: str) -> None:
        check_name(name, field)
        if self.store.volume_by_name(name) is not None:
            raise AlreadyExistsError(f"{field}: a volume named {name!r} exists already")

    async def create_volume(self, name: str, size: int, blocksize: int | None) -> VolumeView:
        """CreateVolume: an empty (sparse) volume."""
        blocksize = check_blocksize(DEFAULT_BLOCKSIZE if blocksize is None else blocksize)
        check_size(size, "size_bytes", blocksize)
        async with self.lock:
            self._check_new_volume_name(name, "name")
            record = VolumeRecord(str(uuid.uuid4()), name, size, blocksize, None, now_iso())
            dataset = self.volume_dataset(record.id)
            try:
                await self.driver.create(dataset, self.backing.create_options(size, blocksize))
            except CommandError as exc:
                raise _zfs_failed(f"creating volume {name!r}", exc) from None
            try:
                await self.backing.materialize(dataset, size)
                self.store.add_volume(record)
            except BaseException:
                await self.driver.destroy(dataset, recursive=True)
                raise
            self._audit(f"volume {name} created ({size} bytes)", record.id)
        return await self.volume_view(record)

    async def resize_volume(self, name: str, new_size: int) -> VolumeView:
        """ResizeVolume: grow only."""
        async with self.lock:
            volume = self.volume_record(name)
            check_size(new_size, "new_size_bytes", volume.volblocksize)
            if new_size < volume.volsize:
                raise FailedPreconditionError(
                    f"new_size_bytes {new_size} is smaller than the volume's size "
                    f"{volume.volsize}: volumes only grow (shrinking would cut off data)"
                )
            if new_size > volume.volsize:
                try:
                    await self.backing.grow(self.volume_dataset(volume.id), new_size)
                except CommandError as exc:
                    raise _zfs_failed(f"resizing volume {name!r}", exc) from None
                self.store.set_volsize(volume.id, new_size)
                self._audit(
                    f"volume {name} resized from {volume.volsize} to {new_size} bytes", volume.id
                )
            volume = self.volume_record(name)
        return await self.volume_view(volume)

    def _refuse_if_in_use(self, volume: VolumeRecord, action: str) -> None:
        path = self.backing.path(self.volume_dataset(volume.id))
        users = holders(path)
        if users:
            pid, comm = users[0]
            raise FailedPreconditionError(
                f"cannot {action} volume {volume.name!r}: it is in use by process {pid} "
                f"({comm}), e.g. a running VM; stop the VM or detach the disk first"
            )

    async def delete_volume(self, name: str) -> None:
        """DeleteVolume: refused while the volume has snapshots or is in use."""
        async with self.lock:
            volume = self.volume_record(name)
            snapshots = self.store.snapshots(volume.id)
            if snapshots:
                names = ", ".join(s.name for s in snapshots)
                raise FailedPreconditionError(
                    f"cannot delete volume {name!r}: it has snapshots ({names}); delete them "
                    "first or promote the one to keep to a template"
                )
            self._refuse_if_in_use(volume, "delete")
            dataset = self.volume_dataset(volume.id)
            try:
                # A volume can hold the @img snapshot of a deleted template: its other
                # clones are promoted and keep their data.
                promoted = await self.driver.destroy_keeping_clones(dataset)
            except CommandError as exc:
                raise _zfs_failed(f"deleting volume {name!r}", exc) from None
            self.store.delete_volume(volume.id)
            note = f" (clones promoted: {', '.join(promoted)})" if promoted else ""
            self._audit(f"volume {name} deleted{note}", volume.id)

    # Snapshots.

    async def create_snapshot(self, volume_name: str, snapshot_name: str) -> SnapshotView:
        """CreateSnapshot."""
        async with self.lock:
            volume = self.volume_record(volume_name, "volume_name")
            check_name(snapshot_name, "snapshot_name")
            if any(s.name == snapshot_name for s in self.store.snapshots(volume.id)):
                raise AlreadyExistsError(
                    f"snapshot_name: volume {volume_name!r} has a snapshot named "
                    f"{snapshot_name!r} already"
                )
            record = SnapshotRecord(
                str(uuid.uuid4()), volume.id, snapshot_name, volume.volsize, now_iso()
            )
            full_name = f"{self.volume_dataset(volume.id)}@{record.id}"
            try:
                await self.driver.snapshot(full_name)
            except CommandError as exc:
                raise _zfs_failed(f"snapshotting volume {volume_name!r}", exc) from None
            try:
                self.store.add_snapshot(record)
            except BaseException:
                await self.driver.destroy(full_name)
                raise
            self._audit(
                f"snapshot {snapshot_name} of volume {volume_name} created", volume.id, record.id
            )
        return SnapshotView(record, full_name, 0)

    async def delete_snapshot(self, volume_name: str, snapshot_name: str) -> None:
        """DeleteSnapshot."""
        async with self.lock:
            volume = self.volume_record(volume_name, "volume_name")
            snapshot = self.snapshot_record(volume, snapshot_name, "snapshot_name")
            full_name = f"{self.volume_dataset(volume.id)}@{snapshot.id}"
            try:
                await self.driver.destroy(full_name)
            except CommandError as exc:
                raise _zfs_failed(f"deleting snapshot {snapshot_name!r}", exc) from None
            self.store.delete_snapshots([snapshot.id])
            self._audit(
                f"snapshot {snapshot_name} of volume {volume_name} deleted",
                volume.id,
                snapshot.id,
            )

    async def rollback(self, volume_name: str, snapshot_name: str) -> RollbackResult:
        """RollbackSnapshot: the volume's bytes and size as at the snapshot; newer snapshots
        are destroyed (and named in the result)."""
        async with self.lock:
            volume = self.volume_record(volume_name, "volume_name")
            snapshot = self.snapshot_record(volume, snapshot_name, "snapshot_name")
            self._refuse_if_in_use(volume, "roll back")
            snapshots = self.store.snapshots(volume.id)
            newer = snapshots[[s.id for s in snapshots].index(snapshot.id) + 1 :]
            dataset = self.volume_dataset(volume.id)
            try:
                await self.driver.rollback(f"{dataset}@{snapshot.id}")
            except CommandError as exc:
                raise _zfs_failed(f"rolling back volume {volume_name!r}", exc) from None
            with self.store.transaction():
                self.store.delete_snapshots([s.id for s in newer])
                self.store.set_volsize(volume.id, snapshot.volsize)
            destroyed = [s.name for s in newer]
            note = f"; destroyed newer snapshots: {', '.join(destroyed)}" if destroyed else ""
            self._audit(
                f"volume {volume_name} rolled back to snapshot {snapshot_name}{note}",
                volume.id,
                snapshot.id,
                *(s.id for s in newer),
            )
            volume = self.volume_record(volume_name, "volume_name")
        return RollbackResult(await self.volume_view(volume), destroyed)

    # Templates.

    def check_new_template_name(self, name: str, field: str) -> None:
        """INVALID_ARGUMENT or ALREADY_EXISTS unless ``name`` can name a new template."""
        check_name(name, field)
        if self.store.template_by_name(name) is not None:
            raise AlreadyExistsError(f"{field}: a template named {name!r} exists already")

    async def clone(self, template_name: str, new_name: str, size: int | None) -> VolumeView:
        """CloneFromTemplate: a copy-on-write volume, grown to ``size`` when given."""
        async with self.lock:
            template = self.template_record(template_name, "template_name")
            self._check_new_volume_name(new_name, "new_volume_name")
            volsize = template.size
            if size is not None:
                check_size(size, "size_bytes", DEFAULT_BLOCKSIZE)
                if size < template.size:
                    raise InvalidArgumentError(
                        f"size_bytes {size} is smaller than template {template_name!r} "
                        f"({template.size} bytes); a clone can only be the same size or larger"
                    )
                volsize = size
            record = VolumeRecord(
                str(uuid.uuid4()), new_name, volsize, DEFAULT_BLOCKSIZE, template.id, now_iso()
            )
            dataset = self.volume_dataset(record.id)
            try:
                await self.driver.clone(self.template_snapshot(template.id), dataset)
            except CommandError as exc:
                raise _zfs_failed(f"cloning template {template_name!r}", exc) from None
            try:
                if volsize > template.size:
                    await self.backing.grow(dataset, volsize)
                self.store.add_volume(record)
            except BaseException:
                await self.driver.destroy(dataset, recursive=True)
                raise
            self._audit(
                f"volume {new_name} cloned from template {template_name}", record.id, template.id
            )
        return await self.volume_view(record)

    async def delete_template(self, name: str) -> None:
        """DeleteTemplate: clones keep their data (one of them is promoted)."""
        async with self.lock:
            template = self.template_record(name)
            dataset = self.template_dataset(template.id)
            try:
                promoted = await self.driver.destroy_keeping_clones(dataset)
            except CommandError as exc:
                raise _zfs_failed(f"deleting template {name!r}", exc) from None
            with self.store.transaction():
                self.store.detach_template(template.id)
                self.store.delete_template(template.id)
            note = f" (clone promoted: {', '.join(promoted)})" if promoted else ""
            self._audit(f"template {name} deleted{note}", template.id)

    async def promote(
        self, volume_name: str, snapshot_name: str, template_name: str
    ) -> TemplateView:
        """PromoteSnapshotToTemplate: an independent copy (send/receive) of the snapshot."""
        async with self.lock:
            volume = self.volume_record(volume_name, "volume_name")
            snapshot = self.snapshot_record(volume, snapshot_name, "snapshot_name")
            self.check_new_template_name(template_name, "template_name")
            record = TemplateRecord(
                str(uuid.uuid4()), template_name, snapshot.volsize, volume.name, now_iso()
            )
            final = self.template_dataset(record.id)
            source = f"{self.volume_dataset(volume.id)}@{snapshot.id}"
            try:
                await self.driver.send_receive(source, final)
                await self.driver.rename(f"{final}@{snapshot.id}", f"{final}@{TEMPLATE_SNAPSHOT}")
            except CommandError as exc:
                await self.driver.destroy(final, recursive=True)
                raise _zfs_failed(f"promoting snapshot {snapshot_name!r}", exc) from None
            try:
                self.store.add_template(record)
            except BaseException:
                await self.driver.destroy(final, recursive=True)
                raise
            self._audit(
                f"snapshot {snapshot_name} of volume {volume_name} promoted to template "
                f"{template_name}",
                record.id,
                volume.id,
                snapshot.id,
            )
        return self.template_view(record)

    async def publish_template(self, dataset: str, record: TemplateRecord) -> TemplateView:
        """Makes an imported image (``dataset``, its image complete) the template ``record``:
        snapshot ``@img``, then store the row. The snapshot is undone on failure."""
        async with self.lock:
            self.check_new_template_name(record.name, "name")
            snapshot = f"{dataset}@{TEMPLATE_SNAPSHOT}"
            await self.driver.snapshot(snapshot)
            try:
                self.store.add_template(record)
            except BaseException:
                await self.driver.destroy(snapshot)
                raise
            self._audit(f"template {record.name} imported", record.id)
        return self.template_view(record)
