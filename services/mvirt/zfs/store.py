"""SQLite state of mvirt-zfs: volumes, snapshots, templates and import jobs, WAL mode,
numbered schema migrations. Names are unique here; ZFS only knows uuids.

Writes are tiny and rare, so the store is used synchronously from the event loop.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from mvirt.daemon.sqlite_state import open_state, transaction
from mvirt.zfs.model import (
    ImportJobRecord,
    JobState,
    SnapshotRecord,
    TemplateRecord,
    VolumeRecord,
)

# Each entry moves the schema from version i to i+1; never edit a released entry, append.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        volsize INTEGER NOT NULL,
        volblocksize INTEGER NOT NULL,
        template_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        volume_id TEXT NOT NULL REFERENCES volumes(id),
        name TEXT NOT NULL,
        volsize INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (volume_id, name)
    );
    CREATE TABLE templates (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        source_volume TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE import_jobs (
        id TEXT PRIMARY KEY,
        template_name TEXT NOT NULL,
        source TEXT NOT NULL,
        state INTEGER NOT NULL,
        bytes_written INTEGER NOT NULL,
        total_bytes INTEGER NOT NULL,
        error TEXT,
        template_id TEXT NOT NULL,
        size INTEGER,
        created_at TEXT NOT NULL,
        completed_at TEXT
    );
    """,
)


class NameTakenError(Exception):
    """Another object of the same kind has this name."""


class ZfsStore:
    """The metadata of one daemon, persisted in ``<data dir>/zfs.db``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_state(path, MIGRATIONS, synchronous="FULL")

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """All statements inside commit together or not at all."""
        return transaction(self._db)

    def close(self) -> None:
        """Closes the database."""
        self._db.close()

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        try:
            self._db.execute(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values())
            )
        except sqlite3.IntegrityError as exc:
            raise NameTakenError(str(values.get("name", ""))) from exc

    # Volumes.

    _VOLUME = "id, name, volsize, volblocksize, template_id, created_at"

    def add_volume(self, volume: VolumeRecord) -> None:
        """Stores a new volume; NameTakenError when the name is in use."""
        self._insert("volumes", volume.__dict__)

    def volume_by_name(self, name: str) -> VolumeRecord | None:
        """The volume called ``name``."""
        row = self._db.execute(
            f"SELECT {self._VOLUME} FROM volumes WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else VolumeRecord(*row)

    def volumes(self) -> list[VolumeRecord]:
        """Every volume, oldest first."""
        rows = self._db.execute(f"SELECT {self._VOLUME} FROM volumes ORDER BY rowid").fetchall()
        return [VolumeRecord(*row) for row in rows]

    def set_volsize(self, volume_id: str, volsize: int) -> None:
        """Records a new size."""
        self._db.execute("UPDATE volumes SET volsize=? WHERE id=?", (volsize, volume_id))

    def delete_volume(self, volume_id: str) -> None:
        """Removes a volume."""
        self._db.execute("DELETE FROM volumes WHERE id=?", (volume_id,))

    def detach_template(self, template_id: str) -> None:
        """Forgets that volumes were cloned from ``template_id`` (it is being deleted)."""
        self._db.execute("UPDATE volumes SET template_id=NULL WHERE template_id=?", (template_id,))

    def clone_count(self, template_id: str) -> int:
        """How many volumes were cloned from the template."""
        return int(
            self._db.execute(
                "SELECT count(*) FROM volumes WHERE template_id=?", (template_id,)
            ).fetchone()[0]
        )

    # Snapshots.

    _SNAPSHOT = "id, volume_id, name, volsize, created_at"

    def add_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Stores a new snapshot; NameTakenError when the volume has one of that name."""
        self._insert("snapshots", snapshot.__dict__)

    def snapshots(self, volume_id: str) -> list[SnapshotRecord]:
        """The volume's snapshots, oldest first."""
        rows = self._db.execute(
            f"SELECT {self._SNAPSHOT} FROM snapshots WHERE volume_id=? ORDER BY rowid",
            (volume_id,),
        ).fetchall()
        return [SnapshotRecord(*row) for row in rows]

    def delete_snapshots(self, snapshot_ids: list[str]) -> None:
        """Removes snapshots."""
        self._db.executemany("DELETE FROM snapshots WHERE id=?", [(i,) for i in snapshot_ids])

    # Templates.

    _TEMPLATE = "id, name, size, source_volume, created_at"

    def add_template(self, template: TemplateRecord) -> None:
        """Stores a new template; NameTakenError when the name is in use."""
        self._insert("templates", template.__dict__)

    def template_by_name(self, name: str) -> TemplateRecord | None:
        """The template called ``name``."""
        row = self._db.execute(
            f"SELECT {self._TEMPLATE} FROM templates WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else TemplateRecord(*row)

    def template(self, template_id: str) -> TemplateRecord | None:
        """The template with this id."""
        row = self._db.execute(
            f"SELECT {self._TEMPLATE} FROM templates WHERE id=?", (template_id,)
        ).fetchone()
        return None if row is None else TemplateRecord(*row)

    def templates(self) -> list[TemplateRecord]:
        """Every template, oldest first."""
        rows = self._db.execute(f"SELECT {self._TEMPLATE} FROM templates ORDER BY rowid").fetchall()
        return [TemplateRecord(*row) for row in rows]

    def delete_template(self, template_id: str) -> None:
        """Removes a template."""
        self._db.execute("DELETE FROM templates WHERE id=?", (template_id,))

    # Import jobs.

    _JOB = (
        "id, template_name, source, state, bytes_written, total_bytes, error, template_id, "
        "size, created_at, completed_at"
    )

    @staticmethod
    def _job(row: tuple[Any, ...]) -> ImportJobRecord:
        values = list(row)
        values[3] = JobState(int(values[3]))
        return ImportJobRecord(*values)

    def add_job(self, job: ImportJobRecord) -> None:
        """Stores a new import job."""
        values = dict(job.__dict__)
        values["state"] = int(job.state)
        self._insert("import_jobs", values)

    def update_job(self, job: ImportJobRecord) -> None:
        """Writes back a job's state, progress, error and end time."""
        self._db.execute(
            "UPDATE import_jobs SET state=?, bytes_written=?, total_bytes=?, error=?, "
            "completed_at=? WHERE id=?",
            (
                int(job.state),
                job.bytes_written,
                job.total_bytes,
                job.error,
                job.completed_at,
                job.id,
            ),
        )

    def job(self, job_id: str) -> ImportJobRecord | None:
        """The job with this id."""
        row = self._db.execute(
            f"SELECT {self._JOB} FROM import_jobs WHERE id=?", (job_id,)
        ).fetchone()
        return None if row is None else self._job(row)

    def jobs(self, include_finished: bool) -> list[ImportJobRecord]:
        """Jobs, oldest first (only the running ones unless ``include_finished``)."""
        query = f"SELECT {self._JOB} FROM import_jobs"
        if not include_finished:
            query += f" WHERE state < {int(JobState.COMPLETED)}"
        rows = self._db.execute(query + " ORDER BY rowid").fetchall()
        return [self._job(row) for row in rows]
