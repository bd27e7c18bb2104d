"""The records mvirt-zfs keeps in SQLite (names and relations live here, not in ZFS)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime


def now_iso() -> str:
    """The current time in ISO 8601 (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VolumeRecord:
    """A volume: dataset ``<pool>/volumes/<id>``."""

    id: str
    name: str
    volsize: int
    volblocksize: int
    template_id: str | None
    created_at: str


@dataclass(frozen=True)
class SnapshotRecord:
    """A user snapshot ``<pool>/volumes/<volume id>@<id>`` and the volume size it caught."""

    id: str
    volume_id: str
    name: str
    volsize: int
    created_at: str


@dataclass(frozen=True)
class TemplateRecord:
    """A template: dataset ``<pool>/templates/<id>`` with snapshot ``@img``."""

    id: str
    name: str
    size: int
    source_volume: str
    created_at: str


class JobState(enum.IntEnum):
    """ImportJobState numbers of the wire contract."""

    PENDING = 1
    DOWNLOADING = 2
    CONVERTING = 3
    WRITING = 4
    COMPLETED = 5
    FAILED = 6
    CANCELLED = 7

    @property
    def finished(self) -> bool:
        """Whether the job has ended."""
        return self >= JobState.COMPLETED


@dataclass(frozen=True)
class ImportJobRecord:
    """One template import; ``template_id`` is chosen when the job starts."""

    id: str
    template_name: str
    source: str
    state: JobState
    bytes_written: int
    total_bytes: int
    error: str | None
    template_id: str
    size: int | None
    created_at: str
    completed_at: str | None
