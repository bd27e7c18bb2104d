"""The SQLite state file every daemon keeps: opened one way (WAL, a busy timeout) and brought
to the newest schema by numbered migrations, each in its own transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


def open_state(
    path: Path,
    migrations: Sequence[str],
    *,
    synchronous: str = "NORMAL",
    foreign_keys: bool = False,
) -> sqlite3.Connection:
    """The database at ``path`` (autocommit mode: callers open their own transactions) with
    every migration past its ``user_version`` applied; a failed migration changes nothing."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=5000")
    if foreign_keys:
        db.execute("PRAGMA foreign_keys=ON")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for index in range(version, len(migrations)):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[index].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={index + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return db
