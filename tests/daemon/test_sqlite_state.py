"""The daemons' shared SQLite state: migrations apply once, in order, and a failed one changes
nothing."""

import sqlite3

import pytest

from mvirt.daemon.sqlite_state import open_state

MIGRATIONS = ("CREATE TABLE a (x INTEGER)", "ALTER TABLE a ADD COLUMN y TEXT; CREATE TABLE b (z)")


def test_migrations_apply_once_and_in_order(tmp_path):
    db = open_state(tmp_path / "s.db", MIGRATIONS)
    db.execute("INSERT INTO a VALUES (1, 'kept')")
    db.close()
    again = open_state(tmp_path / "s.db", MIGRATIONS)
    assert again.execute("PRAGMA user_version").fetchone()[0] == 2
    assert again.execute("SELECT x, y FROM a").fetchall() == [(1, "kept")]
    assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_migration_changes_nothing(tmp_path):
    open_state(tmp_path / "s.db", MIGRATIONS[:1]).close()
    broken = (*MIGRATIONS[:1], "CREATE TABLE c (q); CREATE TABLE a (x)")
    with pytest.raises(sqlite3.OperationalError):
        open_state(tmp_path / "s.db", broken)
    db = open_state(tmp_path / "s.db", MIGRATIONS[:1])
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"a"}
