"""The Storage view: templates, volumes with their snapshots, and import jobs with progress
(mvirt-zfs)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from textual.app import ComposeResult
from textual.widgets import DataTable, Label

from mvirt.cli.output import safe
from mvirt.cli.tui.base import DaemonView
from mvirt.proto import zfs_pb2, zfs_pb2_grpc


def size(n: int) -> str:
    """``20.0G`` for 20 GiB."""
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.1f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass
class Storage:
    """What the view shows."""

    templates: list[zfs_pb2.Template]
    volumes: list[zfs_pb2.Volume]
    jobs: list[zfs_pb2.ImportJob]


class StorageView(DaemonView):
    """Three tables: templates, volumes, import jobs."""

    def compose_body(self) -> ComposeResult:
        yield Label("Templates", classes="section")
        templates: DataTable[str] = DataTable(id="templates", show_cursor=False)
        templates.add_columns("NAME", "SIZE", "CLONES", "CREATED")
        yield templates
        yield Label("Volumes", classes="section")
        volumes: DataTable[str] = DataTable(id="volumes", cursor_type="row")
        volumes.add_columns("NAME", "SIZE", "USED", "SNAPSHOTS", "PATH")
        yield volumes
        yield Label("Import jobs", classes="section")
        jobs: DataTable[str] = DataTable(id="jobs", show_cursor=False)
        jobs.add_columns("TEMPLATE", "STATE", "PROGRESS", "SOURCE")
        yield jobs

    def fetch(self, channel: grpc.Channel) -> Storage:
        stub = zfs_pb2_grpc.ZfsServiceStub(channel)
        return Storage(
            list(stub.ListTemplates(zfs_pb2.ListTemplatesRequest()).templates),
            list(stub.ListVolumes(zfs_pb2.ListVolumesRequest()).volumes),
            list(stub.ListImportJobs(zfs_pb2.ListImportJobsRequest(include_completed=True)).jobs),
        )

    def show(self, data: Storage) -> None:
        templates = self.query_one("#templates", DataTable)
        templates.clear()
        for t in data.templates:
            templates.add_row(
                safe(t.name), size(t.size_bytes), str(t.clone_count), safe(t.created_at)
            )
        volumes = self.query_one("#volumes", DataTable)
        volumes.clear()
        for v in data.volumes:
            snapshots = ", ".join(safe(s.name) for s in v.snapshots) or "-"
            volumes.add_row(
                safe(v.name), size(v.volsize_bytes), size(v.used_bytes), snapshots, safe(v.path)
            )
        jobs = self.query_one("#jobs", DataTable)
        jobs.clear()
        for j in data.jobs:
            state = zfs_pb2.ImportJobState.Name(j.state).removeprefix("IMPORT_JOB_STATE_")
            if j.total_bytes:
                progress = f"{100 * j.bytes_written // j.total_bytes}% of {size(j.total_bytes)}"
            else:
                progress = size(j.bytes_written)
            jobs.add_row(safe(j.template_name), state, progress, safe(j.source))
