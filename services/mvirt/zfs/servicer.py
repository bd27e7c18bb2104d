"""The ZfsService gRPC servicer: thin handlers that call :class:`StorageManager` or
:class:`ImportRunner` and convert the result. Domain errors become status codes in the shared
error layer."""

from __future__ import annotations

import grpc

from mvirt.daemon.version import package_version
from mvirt.proto import zfs_pb2, zfs_pb2_grpc
from mvirt.zfs.convert import (
    job_to_proto,
    pool_to_proto,
    snapshot_to_proto,
    template_to_proto,
    volume_to_proto,
)
from mvirt.zfs.imports import ImportRunner
from mvirt.zfs.manager import StorageManager


class ZfsServicer(zfs_pb2_grpc.ZfsServiceServicer):
    """mvirt.zfs.ZfsService over the storage manager and the import runner."""

    def __init__(self, manager: StorageManager, imports: ImportRunner) -> None:
        self.manager = manager
        self.imports = imports

    async def GetVersion(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.VersionInfo:
        """The daemon's version."""
        return zfs_pb2.VersionInfo(version=package_version())

    async def GetPoolStats(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.GetPoolStatsRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.PoolStats:
        """Pool space, provisioned bytes and compression."""
        return pool_to_proto(await self.manager.pool_stats())

    async def CreateVolume(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.CreateVolumeRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Volume:
        """An empty volume."""
        blocksize = request.volblocksize if request.HasField("volblocksize") else None
        return volume_to_proto(
            await self.manager.create_volume(request.name, request.size_bytes, blocksize)
        )

    async def ListVolumes(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.ListVolumesRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.ListVolumesResponse:
        """Every volume, oldest first."""
        views = await self.manager.list_volumes()
        return zfs_pb2.ListVolumesResponse(volumes=[volume_to_proto(v) for v in views])

    async def GetVolume(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.GetVolumeRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Volume:
        """One volume by name."""
        return volume_to_proto(await self.manager.get_volume(request.name))

    async def DeleteVolume(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.DeleteVolumeRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.DeleteVolumeResponse:
        """Delete a volume without snapshots that no process uses."""
        await self.manager.delete_volume(request.name)
        return zfs_pb2.DeleteVolumeResponse(deleted=True)

    async def ResizeVolume(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.ResizeVolumeRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Volume:
        """Grow a volume."""
        return volume_to_proto(
            await self.manager.resize_volume(request.name, request.new_size_bytes)
        )

    async def CreateSnapshot(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.CreateSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Snapshot:
        """Snapshot a volume."""
        view = await self.manager.create_snapshot(request.volume_name, request.snapshot_name)
        return snapshot_to_proto(view)

    async def ListSnapshots(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.ListSnapshotsRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.ListSnapshotsResponse:
        """A volume's snapshots, oldest first."""
        views = await self.manager.list_snapshots(request.volume_name)
        return zfs_pb2.ListSnapshotsResponse(snapshots=[snapshot_to_proto(s) for s in views])

    async def DeleteSnapshot(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.DeleteSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.DeleteSnapshotResponse:
        """Delete one snapshot."""
        await self.manager.delete_snapshot(request.volume_name, request.snapshot_name)
        return zfs_pb2.DeleteSnapshotResponse(deleted=True)

    async def RollbackSnapshot(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.RollbackSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Volume:
        """Roll a volume back; newer snapshots are destroyed."""
        result = await self.manager.rollback(request.volume_name, request.snapshot_name)
        return volume_to_proto(result.volume)

    async def ImportTemplate(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.ImportTemplateRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.ImportJob:
        """Start an import job."""
        size = request.size_bytes if request.HasField("size_bytes") else None
        job = await self.imports.start(request.name, request.source, size)
        return job_to_proto(job, None)

    async def GetImportJob(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.GetImportJobRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.ImportJob:
        """One import job with its progress."""
        job = self.imports.get(request.id)
        return job_to_proto(job, self.imports.template_of(job))

    async def ListImportJobs(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.ListImportJobsRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.ListImportJobsResponse:
        """Running import jobs (and finished ones on request)."""
        jobs = self.imports.list(request.include_completed)
        return zfs_pb2.ListImportJobsResponse(
            jobs=[job_to_proto(j, self.imports.template_of(j)) for j in jobs]
        )

    async def CancelImportJob(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.CancelImportJobRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.CancelImportJobResponse:
        """Cancel a running import; its partial data is removed."""
        return zfs_pb2.CancelImportJobResponse(cancelled=await self.imports.cancel(request.id))

    async def ListTemplates(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.ListTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.ListTemplatesResponse:
        """Every template, oldest first."""
        views = self.manager.list_templates()
        return zfs_pb2.ListTemplatesResponse(templates=[template_to_proto(t) for t in views])

    async def DeleteTemplate(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.DeleteTemplateRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.DeleteTemplateResponse:
        """Delete a template; its clones keep their data."""
        await self.manager.delete_template(request.name)
        return zfs_pb2.DeleteTemplateResponse(deleted=True)

    async def CloneFromTemplate(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.CloneFromTemplateRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Volume:
        """A copy-on-write volume from a template."""
        size = request.size_bytes if request.HasField("size_bytes") else None
        view = await self.manager.clone(request.template_name, request.new_volume_name, size)
        return volume_to_proto(view)

    async def PromoteSnapshotToTemplate(  # noqa: N802 (gRPC method name)
        self, request: zfs_pb2.PromoteSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> zfs_pb2.Template:
        """An independent template copied from a snapshot."""
        view = await self.manager.promote(
            request.volume_name, request.snapshot_name, request.template_name
        )
        return template_to_proto(view)
