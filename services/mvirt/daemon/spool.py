"""The audit client's on-disk spool: entries waiting for mvirt-log, oldest first.

A small SQLite table in the daemon's data dir. Entries keep their insertion order (an
autoincrement key), survive a crash of the daemon, and are removed only after mvirt-log has
acknowledged them. Entries that can never be delivered (a row that does not decode, an entry
mvirt-log rejects as invalid) move to a ``quarantine`` table in the same file, each with the
reason, instead of blocking the entries behind them.

A spool file that SQLite cannot open as a database is renamed aside (``<name>.corrupt-<time>``)
by :func:`open_spool`, and a fresh one is started: the daemon keeps working and the old file
stays for inspection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from mvirt.daemon.sqlite_state import transaction
from mvirt.proto import log_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  entry BLOB NOT NULL,
  reason TEXT NOT NULL,
  at_ns INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class SpooledEntry:
    """One spooled row: its key, its size and the entry (None if the row does not decode)."""

    seq: int
    size: int
    entry: log_pb2.LogEntry | None
    blob: bytes


@dataclass(frozen=True)
class QuarantinedEntry:
    """An entry that will not be delivered, and why."""

    blob: bytes
    reason: str
    at_ns: int

    @property
    def entry(self) -> log_pb2.LogEntry | None:
        """The entry, if the stored bytes decode."""
        try:
            return log_pb2.LogEntry.FromString(self.blob)
        except DecodeError:
            return None


class AuditSpool:
    """A bounded FIFO of serialized LogEntry messages in SQLite (calls block: use a thread)."""

    def __init__(self, path: Path, max_entries: int) -> None:
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: an entry handed to the spool is on disk before the spool call returns.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._count = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]
            # Entries up to this key were delivered (their rows may still await deletion).
            self._delivered_through = 0
        except BaseException:
            self._db.close()
            raise

    def __len__(self) -> int:
        return self._count

    def append(self, entries: Sequence[log_pb2.LogEntry]) -> int:
        """Appends as many of ``entries`` as fit, in order; returns how many were stored.

        Raises sqlite3.Error (e.g. disk full) with nothing stored."""
        with self._lock:
            room = max(0, self.max_entries - self._count)
            stored = list(entries[:room])
            if stored:
                with transaction(self._db):
                    self._db.executemany(
                        "INSERT INTO spool (entry) VALUES (?)",
                        [(e.SerializeToString(),) for e in stored],
                    )
                self._count += len(stored)
            return len(stored)

    def peek(self, limit: int, max_bytes: int) -> list[SpooledEntry]:
        """The oldest undelivered entries, at most ``limit`` of them and (except a single one)
        at most ``max_bytes`` of serialized entries together."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, entry FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                (self._delivered_through, limit),
            ).fetchall()
        out: list[SpooledEntry] = []
        total = 0
        for seq, blob in rows:
            total += len(blob)
            if out and total > max_bytes:
                break
            try:
                entry: log_pb2.LogEntry | None = log_pb2.LogEntry.FromString(blob)
            except DecodeError:  # the row is quarantined by the audit client
                entry = None
            out.append(SpooledEntry(seq, len(blob), entry, bytes(blob)))
        return out

    def mark_delivered(self, last_seq: int, count: int) -> None:
        """Records that the ``count`` oldest undelivered entries, through key ``last_seq``,
        were delivered, and deletes them. If the deletion fails (e.g. the disk is full, and
        SQLite needs room even to delete) they stay in the file but are not sent again; the
        next call deletes them."""
        with self._lock:
            self._delivered_through = max(self._delivered_through, last_seq)
            self._count -= count
            with contextlib.suppress(sqlite3.Error), transaction(self._db):
                self._db.execute("DELETE FROM spool WHERE seq <= ?", (self._delivered_through,))

    def quarantine(self, blob: bytes, reason: str, seq: int | None = None) -> None:
        """Keeps ``blob`` in the quarantine table with ``reason``; removes spool row ``seq``."""
        with self._lock:
            with transaction(self._db):
                self._db.execute(
                    "INSERT INTO quarantine (entry, reason, at_ns) VALUES (?, ?, ?)",
                    (blob, reason, time.time_ns()),
                )
                removed = 0
                if seq is not None:
                    removed = self._db.execute("DELETE FROM spool WHERE seq = ?", (seq,)).rowcount
            self._count -= removed

    def quarantined(self) -> list[QuarantinedEntry]:
        """Every quarantined entry, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT entry, reason, at_ns FROM quarantine ORDER BY seq"
            ).fetchall()
        return [QuarantinedEntry(bytes(blob), reason, at_ns) for blob, reason, at_ns in rows]

    def close(self) -> None:
        """Closes the database."""
        with self._lock:
            self._db.close()


def open_spool(path: Path, max_entries: int) -> tuple[AuditSpool, Path | None]:
    """Opens the spool at ``path``; a file that is not a usable database is renamed aside
    (with its -wal/-shm files) and a fresh spool started. Returns the spool and the new name
    of the corrupt file, if there was one. OSError and other sqlite3 errors propagate."""
    try:
        return AuditSpool(path, max_entries), None
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):
            raise  # e.g. permissions or a full disk: not the file's fault
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}-{time.time_ns() % 1_000_000_000}")
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return AuditSpool(path, max_entries), aside
