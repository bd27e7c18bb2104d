"""``mvirt`` commands for storage (mvirt-zfs): ``pool``, ``volume``, ``snapshot``,
``template``, ``import`` and ``imports``. Objects are named by name everywhere; sizes take
binary suffixes (``20G`` = 20 GiB)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mvirt.cli.output import Decorator, console, output_option, print_json_line, print_table
from mvirt.cli.rpc import connect, endpoint_option
from mvirt.proto import zfs_pb2, zfs_pb2_grpc

ZFS_SERVER_DEFAULT = "http://[::1]:50053"
FLAG = "--zfs-server"
SERVICE = "mvirt-zfs"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*$", re.IGNORECASE)
_FINISHED = (
    zfs_pb2.IMPORT_JOB_STATE_COMPLETED,
    zfs_pb2.IMPORT_JOB_STATE_FAILED,
    zfs_pb2.IMPORT_JOB_STATE_CANCELLED,
)


def zfs_server_option() -> Decorator:
    """``--zfs-server`` for mvirt-zfs (env MVIRT_ZFS_SERVER)."""
    return endpoint_option(FLAG, "MVIRT_ZFS_SERVER", ZFS_SERVER_DEFAULT, SERVICE)


class SizeType(click.ParamType):
    """Bytes, or a number with K/M/G/T/P (binary: 1K = 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """``20G`` -> 21474836480."""
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a size: use bytes or a number with K, M, G, T or P")
        return int(float(match[1]) * _UNITS[match[2].upper()])


SIZE = SizeType()


def human(size: int) -> str:
    """``21474836480`` -> ``20.0G``."""
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{size}B"


@contextmanager
def zfs_stub(server: str) -> Iterator[zfs_pb2_grpc.ZfsServiceStub]:
    """A ZfsService stub; gRPC errors inside the block become one-line CLI errors."""
    with connect(server, FLAG, SERVICE) as channel:
        yield zfs_pb2_grpc.ZfsServiceStub(channel)


def as_json(message: Message) -> dict[str, Any]:
    """The JSON form of a message (proto field names, enums by name; 64-bit sizes are
    strings, as protobuf's JSON mapping writes them)."""
    return MessageToDict(message, preserving_proto_field_name=True)


# pool


@click.command()
@output_option()
@zfs_server_option()
def pool(*, fmt: str, server: str) -> None:
    """Show the pool's size, use, provisioned bytes and compression."""
    with zfs_stub(server) as stub:
        stats = stub.GetPoolStats(zfs_pb2.GetPoolStatsRequest())
    if fmt == "json":
        print_json_line(as_json(stats))
        return
    print_table(
        ("POOL", "SIZE", "USED", "AVAILABLE", "PROVISIONED", "COMPRESSION"),
        [
            (
                escape(stats.name),
                human(stats.total_bytes),
                human(stats.used_bytes),
                human(stats.available_bytes),
                human(stats.provisioned_bytes),
                f"{stats.compression_ratio:.2f}x",
            )
        ],
    )


# volume


def _volume_rows(volumes: list[zfs_pb2.Volume]) -> list[tuple[str, ...]]:
    return [
        (
            escape(v.name),
            human(v.volsize_bytes),
            human(v.used_bytes),
            str(len(v.snapshots)),
            escape(v.path),
        )
        for v in volumes
    ]


def show_volumes(volumes: list[zfs_pb2.Volume], fmt: str) -> None:
    """Volumes as a table or JSON lines."""
    if fmt == "json":
        for volume in volumes:
            print_json_line(as_json(volume))
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("NAME", "SIZE", "USED", "SNAPSHOTS"):
            table.add_column(column, no_wrap=True)
        # The path is what a VM attaches: never shortened with an ellipsis.
        table.add_column("PATH", overflow="fold")
        for row in _volume_rows(volumes):
            table.add_row(*row)
        console().print(table)


@click.group()
def volume() -> None:
    """Create, list, resize and delete volumes."""


@volume.command("create")
@click.argument("name")
@click.option("--size", type=SIZE, required=True, help="e.g. 20G")
@click.option("--volblocksize", type=SIZE, help="block size (default 16K)")
@output_option()
@zfs_server_option()
def volume_create(*, name: str, size: int, volblocksize: int | None, fmt: str, server: str) -> None:
    """Create an empty volume."""
    request = zfs_pb2.CreateVolumeRequest(name=name, size_bytes=size)
    if volblocksize is not None:
        request.volblocksize = volblocksize
    with zfs_stub(server) as stub:
        show_volumes([stub.CreateVolume(request)], fmt)


@volume.command("list")
@output_option()
@zfs_server_option()
def volume_list(*, fmt: str, server: str) -> None:
    """List volumes."""
    with zfs_stub(server) as stub:
        show_volumes(list(stub.ListVolumes(zfs_pb2.ListVolumesRequest()).volumes), fmt)


@volume.command("get")
@click.argument("name")
@output_option()
@zfs_server_option()
def volume_get(*, name: str, fmt: str, server: str) -> None:
    """Show one volume."""
    with zfs_stub(server) as stub:
        show_volumes([stub.GetVolume(zfs_pb2.GetVolumeRequest(name=name))], fmt)


@volume.command("resize")
@click.argument("name")
@click.option("--size", type=SIZE, required=True, help="new size (volumes only grow)")
@output_option()
@zfs_server_option()
def volume_resize(*, name: str, size: int, fmt: str, server: str) -> None:
    """Grow a volume."""
    with zfs_stub(server) as stub:
        request = zfs_pb2.ResizeVolumeRequest(name=name, new_size_bytes=size)
        show_volumes([stub.ResizeVolume(request)], fmt)


@volume.command("delete")
@click.argument("names", nargs=-1, required=True)
@zfs_server_option()
def volume_delete(*, names: tuple[str, ...], server: str) -> None:
    """Delete volumes (refused while they have snapshots or are in use)."""
    with zfs_stub(server) as stub:
        for name in names:
            stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name=name))
            click.echo(f"deleted volume {name}")


# snapshot


def show_snapshots(snapshots: list[zfs_pb2.Snapshot], fmt: str) -> None:
    """Snapshots as a table or JSON lines."""
    if fmt == "json":
        for snapshot in snapshots:
            print_json_line(as_json(snapshot))
    else:
        print_table(
            ("NAME", "USED", "CREATED", "ID"),
            [(escape(s.name), human(s.used_bytes), s.created_at, s.id) for s in snapshots],
        )


@click.group()
def snapshot() -> None:
    """Snapshot volumes, roll back, promote a snapshot to a template."""


@snapshot.command("create")
@click.argument("volume_name", metavar="VOLUME")
@click.argument("name")
@output_option()
@zfs_server_option()
def snapshot_create(*, volume_name: str, name: str, fmt: str, server: str) -> None:
    """Snapshot a volume."""
    with zfs_stub(server) as stub:
        request = zfs_pb2.CreateSnapshotRequest(volume_name=volume_name, snapshot_name=name)
        show_snapshots([stub.CreateSnapshot(request)], fmt)


@snapshot.command("list")
@click.argument("volume_name", metavar="VOLUME")
@output_option()
@zfs_server_option()
def snapshot_list(*, volume_name: str, fmt: str, server: str) -> None:
    """List a volume's snapshots, oldest first."""
    with zfs_stub(server) as stub:
        request = zfs_pb2.ListSnapshotsRequest(volume_name=volume_name)
        show_snapshots(list(stub.ListSnapshots(request).snapshots), fmt)


@snapshot.command("delete")
@click.argument("volume_name", metavar="VOLUME")
@click.argument("name")
@zfs_server_option()
def snapshot_delete(*, volume_name: str, name: str, server: str) -> None:
    """Delete a snapshot."""
    with zfs_stub(server) as stub:
        stub.DeleteSnapshot(
            zfs_pb2.DeleteSnapshotRequest(volume_name=volume_name, snapshot_name=name)
        )
    click.echo(f"deleted snapshot {name} of {volume_name}")


@snapshot.command("rollback")
@click.argument("volume_name", metavar="VOLUME")
@click.argument("name")
@output_option()
@zfs_server_option()
def snapshot_rollback(*, volume_name: str, name: str, fmt: str, server: str) -> None:
    """Roll a volume back to a snapshot; newer snapshots are destroyed (and listed)."""
    with zfs_stub(server) as stub:
        before = stub.ListSnapshots(zfs_pb2.ListSnapshotsRequest(volume_name=volume_name))
        rolled = stub.RollbackSnapshot(
            zfs_pb2.RollbackSnapshotRequest(volume_name=volume_name, snapshot_name=name)
        )
    kept = {s.id for s in rolled.snapshots}
    destroyed = [s.name for s in before.snapshots if s.id not in kept]
    if fmt == "json":
        print_json_line({"volume": as_json(rolled), "destroyed_snapshots": destroyed})
        return
    click.echo(f"rolled back {volume_name} to {name}")
    if destroyed:
        click.echo(f"destroyed newer snapshots: {', '.join(destroyed)}")


@snapshot.command("promote")
@click.argument("volume_name", metavar="VOLUME")
@click.argument("name")
@click.argument("template_name", metavar="TEMPLATE")
@output_option()
@zfs_server_option()
def snapshot_promote(
    *, volume_name: str, name: str, template_name: str, fmt: str, server: str
) -> None:
    """Copy a snapshot into a new, independent template."""
    with zfs_stub(server) as stub:
        template = stub.PromoteSnapshotToTemplate(
            zfs_pb2.PromoteSnapshotRequest(
                volume_name=volume_name, snapshot_name=name, template_name=template_name
            )
        )
    show_templates([template], fmt)


# template


def show_templates(templates: list[zfs_pb2.Template], fmt: str) -> None:
    """Templates as a table or JSON lines."""
    if fmt == "json":
        for template in templates:
            print_json_line(as_json(template))
    else:
        print_table(
            ("NAME", "SIZE", "CLONES", "SOURCE VOLUME", "CREATED"),
            [
                (
                    escape(t.name),
                    human(t.size_bytes),
                    str(t.clone_count),
                    escape(t.source_volume) or "-",
                    t.created_at,
                )
                for t in templates
            ],
        )


@click.group()
def template() -> None:
    """List, clone and delete templates (make them with `mvirt import`)."""


@template.command("list")
@output_option()
@zfs_server_option()
def template_list(*, fmt: str, server: str) -> None:
    """List templates."""
    with zfs_stub(server) as stub:
        show_templates(list(stub.ListTemplates(zfs_pb2.ListTemplatesRequest()).templates), fmt)


@template.command("clone")
@click.argument("template_name", metavar="TEMPLATE")
@click.argument("volume_name", metavar="VOLUME")
@click.option("--size", type=SIZE, help="grow the new volume to this size")
@output_option()
@zfs_server_option()
def template_clone(
    *, template_name: str, volume_name: str, size: int | None, fmt: str, server: str
) -> None:
    """Make a copy-on-write volume from a template."""
    request = zfs_pb2.CloneFromTemplateRequest(
        template_name=template_name, new_volume_name=volume_name
    )
    if size is not None:
        request.size_bytes = size
    with zfs_stub(server) as stub:
        show_volumes([stub.CloneFromTemplate(request)], fmt)


@template.command("delete")
@click.argument("names", nargs=-1, required=True)
@zfs_server_option()
def template_delete(*, names: tuple[str, ...], server: str) -> None:
    """Delete templates (their clones keep their data)."""
    with zfs_stub(server) as stub:
        for name in names:
            stub.DeleteTemplate(zfs_pb2.DeleteTemplateRequest(name=name))
            click.echo(f"deleted template {name}")


# import


def state_name(state: int) -> str:
    """``DOWNLOADING`` for ``IMPORT_JOB_STATE_DOWNLOADING``."""
    return zfs_pb2.ImportJobState.Name(state).removeprefix("IMPORT_JOB_STATE_")


IMPORT_POLL_SLOW = 0.2  # enough for a progress bar
IMPORT_POLL_FAST = 0.02  # near a job's end: how late the command may notice that it ended


def import_poll_delay(job: zfs_pb2.ImportJob, elapsed: float) -> float:
    """Seconds to wait before asking for ``job`` again, ``elapsed`` seconds after following
    it began. GetImportJob has no watch: a job whose progress says it ends soon (or that is
    still PENDING, probing its source) is asked every 20 ms, so the command returns right
    after the job ends; one with a while to go at half its predicted rest, at most every
    0.2 s."""
    if job.total_bytes and job.bytes_written:
        remaining = elapsed * (job.total_bytes - job.bytes_written) / job.bytes_written
        return min(max(remaining / 2, IMPORT_POLL_FAST), IMPORT_POLL_SLOW)
    if job.state == zfs_pb2.IMPORT_JOB_STATE_PENDING:
        return IMPORT_POLL_FAST
    return IMPORT_POLL_SLOW


def _follow(stub: zfs_pb2_grpc.ZfsServiceStub, job: zfs_pb2.ImportJob) -> zfs_pb2.ImportJob:
    columns = (
        TextColumn("{task.description:<11}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console(), transient=False) as progress:
        task = progress.add_task(state_name(job.state), total=None)
        start = time.monotonic()
        try:
            while job.state not in _FINISHED:
                time.sleep(import_poll_delay(job, time.monotonic() - start))
                job = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job.id))
                progress.update(
                    task,
                    description=state_name(job.state),
                    completed=job.bytes_written,
                    total=job.total_bytes or None,
                )
        except KeyboardInterrupt:
            stub.CancelImportJob(zfs_pb2.CancelImportJobRequest(id=job.id))
            raise click.ClickException(f"import job {job.id} cancelled") from None
    return job


@click.command("import")
@click.argument("name")
@click.argument("source")
@click.option("--size", type=SIZE, help="grow the template to this size")
@click.option("--detach", is_flag=True, help="print the job and return at once")
@output_option()
@zfs_server_option()
def import_template(
    *, name: str, source: str, size: int | None, detach: bool, fmt: str, server: str
) -> None:
    """Import a raw or qcow2 image (file or http(s) URL; xz/zstd/gzip too) as template NAME.

    Shows a progress bar until the job ends; Ctrl-C cancels it."""
    if "://" not in source:
        source = os.path.abspath(source)
    request = zfs_pb2.ImportTemplateRequest(name=name, source=source)
    if size is not None:
        request.size_bytes = size
    with zfs_stub(server) as stub:
        job = stub.ImportTemplate(request)
        if not detach:
            job = _wait(stub, job) if fmt == "json" else _follow(stub, job)
    if fmt == "json":
        print_json_line(as_json(job))
    elif detach:
        click.echo(f"import job {job.id} started")
    if job.state == zfs_pb2.IMPORT_JOB_STATE_COMPLETED:
        if fmt != "json":
            click.echo(f"template {name} imported ({human(job.template.size_bytes)})")
    elif job.state in _FINISHED:
        raise click.ClickException(f"import {state_name(job.state)}: {job.error}")


def _wait(stub: zfs_pb2_grpc.ZfsServiceStub, job: zfs_pb2.ImportJob) -> zfs_pb2.ImportJob:
    start = time.monotonic()
    while job.state not in _FINISHED:
        time.sleep(import_poll_delay(job, time.monotonic() - start))
        job = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job.id))
    return job


@click.group()
def imports() -> None:
    """List and cancel import jobs."""


@imports.command("list")
@click.option("--all", "include_all", is_flag=True, help="include finished jobs")
@output_option()
@zfs_server_option()
def imports_list(*, include_all: bool, fmt: str, server: str) -> None:
    """List import jobs (running ones unless --all)."""
    with zfs_stub(server) as stub:
        jobs = stub.ListImportJobs(zfs_pb2.ListImportJobsRequest(include_completed=include_all))
    if fmt == "json":
        for job in jobs.jobs:
            print_json_line(as_json(job))
        return
    print_table(
        ("ID", "TEMPLATE", "STATE", "PROGRESS", "SOURCE", "ERROR"),
        [
            (
                j.id,
                escape(j.template_name),
                state_name(j.state),
                f"{human(j.bytes_written)}/{human(j.total_bytes)}",
                escape(j.source),
                escape(j.error),
            )
            for j in jobs.jobs
        ],
    )


@imports.command("cancel")
@click.argument("job_id", metavar="ID")
@zfs_server_option()
def imports_cancel(*, job_id: str, server: str) -> None:
    """Cancel a running import (its partial data is removed)."""
    with zfs_stub(server) as stub:
        reply = stub.CancelImportJob(zfs_pb2.CancelImportJobRequest(id=job_id))
    click.echo(f"cancelled {job_id}" if reply.cancelled else f"{job_id} had already ended")


def volume_disk(value: str, server: str) -> str:
    """``--disk`` of ``mvirt create``: an existing path stays as it is; a bare name (no
    ``/``) that is no file here names a volume, replaced by its path from mvirt-zfs."""
    name, suffix = (value[:-3], ":ro") if value.endswith(":ro") else (value, "")
    if "/" in name or os.path.exists(name):
        return value
    with zfs_stub(server) as stub:
        try:
            path = stub.GetVolume(zfs_pb2.GetVolumeRequest(name=name)).path
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            raise click.BadParameter(
                f"{name!r} is neither a file nor a volume; see `mvirt volume list`",
                param_hint="--disk",
            ) from None
    return path + suffix


COMMANDS = (pool, volume, snapshot, template, import_template, imports)
"""What ``mvirt.cli.main`` adds to the command group."""
