"""The audit client's on-disk spool: entries waiting for mvirt-log, oldest first.

A small SQLite table in the daemon's data dir. Entries keep their insertion order (an
autoincrement key), survive a crash of the daemon, and are removed only after mvirt-log has
acknowledged them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from mvirt.proto import log_pb2


class AuditSpool:
    """A bounded FIFO of serialized LogEntry messages in SQLite (calls block: use a thread)."""

    def __init__(self, path: Path, max_entries: int) -> None:
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an entry handed to the spool is on disk before the spool call returns.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "entry BLOB NOT NULL)"
        )
        self._count = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def append(self, entries: Sequence[log_pb2.LogEntry]) -> int:
        """Appends as many of ``entries`` as fit, in order; returns how many were stored."""
        with self._lock:
            room = max(0, self.max_entries - self._count)
            stored = list(entries[:room])
            if stored:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.executemany(
                        "INSERT INTO spool (entry) VALUES (?)",
                        [(e.SerializeToString(),) for e in stored],
                    )
                self._count += len(stored)
            return len(stored)

    def peek(self, limit: int) -> tuple[int, list[log_pb2.LogEntry]]:
        """The oldest ``limit`` entries and the key of the last one (0 when empty)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, entry FROM spool ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        if not rows:
            return 0, []
        return rows[-1][0], [log_pb2.LogEntry.FromString(blob) for _, blob in rows]

    def remove_through(self, last_seq: int) -> None:
        """Removes every entry up to and including key ``last_seq`` (they were delivered)."""
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute("DELETE FROM spool WHERE seq <= ?", (last_seq,))
            self._count -= cur.rowcount

    def close(self) -> None:
        """Closes the database."""
        with self._lock:
            self._db.close()
