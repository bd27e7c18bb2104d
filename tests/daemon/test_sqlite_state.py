"""The daemons' shared SQLite state: migrations apply once, in order, and a failed one changes
nothing."""

import sqlite3

import pytest

from mvirt.daemon.sqlite_state import open_state, transaction

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


class _RefusedError(Exception):
    pass


def _rows(db: sqlite3.Connection) -> list[tuple[int]]:
    return db.execute("SELECT x FROM a ORDER BY x").fetchall()


def test_a_transaction_commits_what_it_wrote(tmp_path):
    db = open_state(tmp_path / "s.db", MIGRATIONS)
    with transaction(db):
        db.execute("INSERT INTO a (x) VALUES (1)")
        db.execute("INSERT INTO a (x) VALUES (2)")
    other = sqlite3.connect(tmp_path / "s.db")
    assert _rows(other) == [(1,), (2,)]


def test_an_exception_inside_rolls_back_everything_and_is_raised_again(tmp_path):
    db = open_state(tmp_path / "s.db", MIGRATIONS)
    with pytest.raises(_RefusedError), transaction(db):
        db.execute("INSERT INTO a (x) VALUES (1)")
        raise _RefusedError
    assert not db.in_transaction
    assert _rows(db) == []
    # The connection takes the next transaction as if nothing had happened.
    with transaction(db):
        db.execute("INSERT INTO a (x) VALUES (3)")
    assert _rows(sqlite3.connect(tmp_path / "s.db")) == [(3,)]


def test_a_commit_that_fails_rolls_back_and_leaves_the_connection_usable(tmp_path):
    # A deferred foreign key is checked only at COMMIT, which then fails with the
    # transaction still open.
    schema = (
        "CREATE TABLE a (x INTEGER PRIMARY KEY);"
        "CREATE TABLE b (x INTEGER REFERENCES a(x) DEFERRABLE INITIALLY DEFERRED)",
    )
    db = open_state(tmp_path / "s.db", schema, foreign_keys=True)
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO a (x) VALUES (1)")
        db.execute("INSERT INTO b (x) VALUES (2)")
    assert not db.in_transaction
    assert _rows(db) == []
    with transaction(db):
        db.execute("INSERT INTO a (x) VALUES (2)")
        db.execute("INSERT INTO b (x) VALUES (2)")
    assert _rows(db) == [(2,)]


def test_an_error_sqlite_rolled_back_itself_is_the_error_raised(tmp_path):
    # OR ROLLBACK ends the transaction inside SQLite, as a full disk can: the caller gets
    # the constraint error, not a failed ROLLBACK.
    db = open_state(tmp_path / "s.db", ("CREATE TABLE a (x INTEGER UNIQUE)",))
    db.execute("INSERT INTO a (x) VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"), transaction(db):
        db.execute("INSERT INTO a (x) VALUES (2)")
        db.execute("INSERT OR ROLLBACK INTO a (x) VALUES (1)")
    assert not db.in_transaction
    assert _rows(db) == [(1,)]
