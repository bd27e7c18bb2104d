"""Conversions between the manager's views and the mvirt.zfs protobuf messages."""

from __future__ import annotations

from mvirt.proto import zfs_pb2
from mvirt.zfs.manager import PoolView, SnapshotView, TemplateView, VolumeView
from mvirt.zfs.model import ImportJobRecord


def snapshot_to_proto(view: SnapshotView) -> zfs_pb2.Snapshot:
    """Snapshot."""
    return zfs_pb2.Snapshot(
        id=view.record.id,
        name=view.record.name,
        full_name=view.full_name,
        used_bytes=view.used,
        created_at=view.record.created_at,
    )


def volume_to_proto(view: VolumeView) -> zfs_pb2.Volume:
    """Volume."""
    record = view.record
    return zfs_pb2.Volume(
        id=record.id,
        name=record.name,
        path=view.path,
        volsize_bytes=record.volsize,
        used_bytes=view.used,
        volblocksize=record.volblocksize,
        compression_ratio=view.compression_ratio,
        created_at=record.created_at,
        snapshots=[snapshot_to_proto(s) for s in view.snapshots],
    )


def template_to_proto(view: TemplateView) -> zfs_pb2.Template:
    """Template."""
    record = view.record
    return zfs_pb2.Template(
        id=record.id,
        name=record.name,
        snapshot_path=view.snapshot_path,
        source_volume=record.source_volume,
        size_bytes=record.size,
        created_at=record.created_at,
        clone_count=view.clone_count,
    )


def job_to_proto(job: ImportJobRecord, template: TemplateView | None) -> zfs_pb2.ImportJob:
    """ImportJob (``template`` set when the job completed)."""
    message = zfs_pb2.ImportJob(
        id=job.id,
        template_name=job.template_name,
        source=job.source,
        state=int(job.state),  # type: ignore[arg-type]
        bytes_written=job.bytes_written,
        total_bytes=job.total_bytes,
        created_at=job.created_at,
    )
    if job.error is not None:
        message.error = job.error
    if job.completed_at is not None:
        message.completed_at = job.completed_at
    if template is not None:
        message.template.CopyFrom(template_to_proto(template))
    return message


def pool_to_proto(view: PoolView) -> zfs_pb2.PoolStats:
    """PoolStats."""
    return zfs_pb2.PoolStats(
        name=view.name,
        total_bytes=view.total,
        available_bytes=view.available,
        used_bytes=view.used,
        provisioned_bytes=view.provisioned,
        compression_ratio=view.compression_ratio,
    )
