"""The SQLite state file every daemon keeps: opened one way (WAL, a busy timeout) and brought
to the newest schema by numbered migrations, each in its own transaction; and the one way to
write a transaction on such a connection."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on ``db`` (a connection in autocommit mode, as :func:`open_state`
    opens it): everything inside is stored, or nothing.

    ``BEGIN IMMEDIATE`` takes the write lock at once, so a concurrent writer waits for the
    busy timeout here rather than failing halfway. Any exception inside, or a ``COMMIT`` that
    fails, rolls the transaction back and is raised again; the connection is usable afterwards.
    (SQLite rolls back by itself after some errors, such as a full disk: then there is nothing
    left to roll back.)"""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


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
        with transaction(db):
            for statement in migrations[index].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={index + 1}")
    return db
