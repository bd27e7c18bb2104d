"""mvirt-log's storage: SQLite in WAL mode with group commit and an inverted index.

Tables: ``entries`` (one row per entry; ``seq`` is the arrival order, ``id`` the ULID) and
``refs`` (one row per related object id of an entry, keyed ``(object_id, ts, seq)``), so a
query by object reads a contiguous, time-ordered stretch of the index.

All writes go through one writer thread. Appends that arrive while a commit is running are
gathered into the next transaction (group commit), and a caller's append returns only after
its transaction is committed with ``synchronous=FULL``: an acknowledged entry survives a crash
of the process or the machine. Reads use their own connections and never wait for writes.
Retention deletes run on the same writer thread in small chunks, between commits. Each
committed group of rows is handed once to the open follow queries (``mvirt.log.follow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mvirt.daemon import log_limits as limits
from mvirt.daemon.errors import AlreadyExistsError
from mvirt.daemon.sqlite_state import transaction
from mvirt.daemon.ulid import UlidGenerator
from mvirt.log.follow import Follower, Followers
from mvirt.proto import log_pb2

DB_FILE = "log.sqlite3"
PAGE_ROWS = 1000
MAX_GROUP_ENTRIES = 20_000
RETENTION_CHUNK = 2000
WRITER_CACHE_KIB = 64 * 1024
FOLLOW_BACKLOG_ROWS = 10_000
WAL_LIMIT_BYTES = 16 * 1024 * 1024
"""``journal_size_limit``: the WAL file is cut back to this size after a checkpoint."""

SCHEMA = """
-- The tables and indexes; benchmarks/log_bench.py builds its plain-SQLite baseline from this.

CREATE TABLE IF NOT EXISTS entries (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  ts INTEGER NOT NULL,
  level INTEGER NOT NULL,
  component TEXT NOT NULL,
  message TEXT NOT NULL,
  related TEXT NOT NULL,
  arrived INTEGER
);
CREATE INDEX IF NOT EXISTS entries_by_time ON entries (ts, seq);
CREATE TABLE IF NOT EXISTS refs (
  object_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (object_id, ts, seq)
) WITHOUT ROWID;
"""
_COLUMNS = "e.seq, e.id, e.ts, e.level, e.component, e.message, e.related"
# Related ids cannot contain a newline (see limits.OBJECT_ID_PATTERN), so it separates them.
_SEP = "\n"

Row = tuple[int, str, int, int, str, str, str]


@dataclass(frozen=True)
class QueryFilter:
    """Which entries a query matches; times are inclusive nanoseconds."""

    object_id: str | None = None
    component: str | None = None
    start_ns: int = 0
    end_ns: int = (1 << 63) - 1

    def matches(self, row: Row) -> bool:
        """Whether a stored row matches (used for entries arriving during a follow)."""
        _, _, ts, _, component, _, related = row
        if not self.start_ns <= ts <= self.end_ns:
            return False
        if self.component is not None and component != self.component:
            return False
        return self.object_id is None or self.object_id in related.split(_SEP)


def row_to_entry(row: Row) -> log_pb2.LogEntry:
    """The wire form of a stored row."""
    _, entry_id, ts, level, component, message, related = row
    return log_pb2.LogEntry(
        id=entry_id,
        timestamp_ns=ts,
        message=message,
        level=level,  # type: ignore[arg-type]
        component=component,
        related_object_ids=related.split(_SEP) if related else [],
    )


class _Append:
    def __init__(
        self, entries: list[log_pb2.LogEntry], future: asyncio.Future[Any], single: bool
    ) -> None:
        self.entries = entries
        self.future = future
        self.single = single

    def field(self, index: int) -> str:
        """How the request names entry ``index`` (``entry`` of Log, ``entries[i]`` of a batch)."""
        return "entry" if self.single else f"entries[{index}]"


class _Job:
    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        transaction: bool = True,
    ) -> None:
        self.fn = fn
        self.future = future
        self.transaction = transaction


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """Runs on the event loop: hands each waiting caller its result or exception."""
    for future, result in outcomes:
        if future.done():  # the caller went away (cancelled)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


_STOP = object()


class LogStore:
    """The entry store; create with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids = UlidGenerator()
        self._loop = asyncio.get_running_loop()
        self._jobs: queue.Queue[object] = queue.Queue()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all_readers: list[sqlite3.Connection] = []
        self._db = self._connect()
        # Inserts into the inverted index land at random places (object ids are not
        # ordered); a larger page cache for the writer keeps the hot pages in memory.
        self._db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if "arrived" not in columns:
            # Stores from before arrival times: their rows count as arrived at their timestamp.
            self._db.execute("ALTER TABLE entries ADD COLUMN arrived INTEGER")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        self.last_seq = self._max_seq()
        self.followers = Followers(limits.MAX_FOLLOWERS, FOLLOW_BACKLOG_ROWS)
        self._writer = threading.Thread(target=self._write_forever, name="log-writer", daemon=True)
        self._writer.start()

    @classmethod
    async def open(cls, data_dir: Path) -> LogStore:
        """Opens (creating if needed) the store in ``data_dir``."""
        return cls(data_dir / DB_FILE)

    def _max_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0])

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so an acknowledged entry survives kill -9
        # and power loss. Group commit amortises the sync over every waiting append.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=10000")
        return db

    # --- writes -----------------------------------------------------------------------------

    async def append(self, entries: list[log_pb2.LogEntry], *, single: bool = False) -> list[str]:
        """Stores ``entries`` (validated) and returns their ids once durable.

        Entries without an id get a new ULID, a timestamp of 0 becomes the time of storing.
        An entry whose id is stored already with the same content is not stored again (so a
        client may retry a batch safely); with different content the call fails with
        AlreadyExistsError and stores nothing. ``single``: the entries came from ``Log``
        (error messages say ``entry`` instead of ``entries[i]``).
        """
        future: asyncio.Future[list[str]] = self._loop.create_future()
        self._jobs.put(_Append(entries, future, single))
        return await future

    async def run_job(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Runs ``fn(connection)`` in its own transaction on the writer thread."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put(_Job(fn, future))
        return await future

    def _reply(self, outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
        # One wake-up of the event loop per commit, however many callers it answers.
        self._loop.call_soon_threadsafe(_settle, outcomes)

    def _write_forever(self) -> None:
        while True:
            first = self._jobs.get()
            if first is _STOP:
                return
            if isinstance(first, _Job):
                self._run_job(first)
                continue
            assert isinstance(first, _Append)
            group = [first]
            count = len(first.entries)
            pending_stop = False
            # Group commit: everything already waiting goes into the same transaction.
            while count < MAX_GROUP_ENTRIES:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, _Append):
                    # Keep order: run the job right after this group.
                    self._commit_group(group)
                    group = []
                    if nxt is _STOP:
                        pending_stop = True
                    else:
                        assert isinstance(nxt, _Job)
                        self._run_job(nxt)
                    break
                group.append(nxt)
                count += len(nxt.entries)
            if group:
                self._commit_group(group)
            if pending_stop:
                return

    def _commit_group(self, group: list[_Append]) -> None:
        db = self._db
        now = time.time_ns()
        try:
            stored = self._stored([e.id for item in group for e in item.entries if e.id])
            # The writer thread is the only writer, so it numbers rows itself and can insert
            # whole groups with executemany.
            seq = self.last_seq
            entry_rows: list[Row] = []
            ref_rows: list[tuple[str, int, int]] = []
            outcomes: list[tuple[asyncio.Future[Any], Any]] = []
            for item in group:
                try:
                    ids, rows, refs, seq_after = self._rows_of(item, stored, seq, now)
                except AlreadyExistsError as exc:
                    outcomes.append((item.future, exc))  # only this call fails
                    continue
                seq = seq_after
                entry_rows += rows
                ref_rows += refs
                for row in rows:
                    stored[row[1]] = row[2:]
                outcomes.append((item.future, ids))
            with transaction(db):
                db.executemany(
                    "INSERT INTO entries (seq, id, ts, level, component, message, related, "
                    f"arrived) VALUES (?, ?, ?, ?, ?, ?, ?, {int(now)})",
                    entry_rows,
                )
                db.executemany("INSERT INTO refs (object_id, ts, seq) VALUES (?, ?, ?)", ref_rows)
        except Exception as exc:
            # Whatever failed, the callers get the error and the writer keeps running.
            self._reply([(item.future, exc) for item in group])
            return
        self.last_seq = seq
        if self.followers.count and entry_rows:
            # One hand-over per commit, however many followers there are.
            self._loop.call_soon_threadsafe(self.followers.publish, entry_rows)
        self._reply(outcomes)

    def _rows_of(
        self, item: _Append, stored: dict[str, tuple[Any, ...]], seq: int, now: int
    ) -> tuple[list[str], list[Row], list[tuple[str, int, int]], int]:
        """The ids, new rows and index rows of one append call, numbered after ``seq``.

        An id stored already (or earlier in the same call) with the same content is a retry
        and is skipped; with different content the call fails with AlreadyExistsError."""
        ids: list[str] = []
        rows: list[Row] = []
        refs: list[tuple[str, int, int]] = []
        mine: dict[str, tuple[Any, ...]] = {}
        for i, entry in enumerate(item.entries):
            entry_id = entry.id or self._ids.new()
            ids.append(entry_id)
            related = _SEP.join(dict.fromkeys(entry.related_object_ids))
            ts = entry.timestamp_ns or now
            content = (ts, entry.level, entry.component, entry.message, related)
            before = mine.get(entry_id) or stored.get(entry_id)
            if before is not None:
                # A timestamp of 0 means "now": a retry of such an entry matches any time.
                same_time = entry.timestamp_ns == 0 or before[0] == ts
                if not same_time or before[1:] != content[1:]:
                    raise AlreadyExistsError(
                        f"{item.field(i)}.id {entry_id} is stored already with different content",
                        hint="a retry must send the same entry; a new entry needs a new id "
                        "(or none, and the server assigns one)",
                    )
                continue  # stored before: a retried delivery
            mine[entry_id] = content
            seq += 1
            rows.append((seq, entry_id, *content))
            refs.extend((oid, ts, seq) for oid in dict.fromkeys(entry.related_object_ids))
        return ids, rows, refs, seq

    def _stored(self, ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """The stored content (ts, level, component, message, related) of those of ``ids``
        that are stored already."""
        found: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                "SELECT id, ts, level, component, message, related FROM entries "
                f"WHERE id IN ({marks})",
                chunk,
            ):
                found[row[0]] = tuple(row[1:])
        return found

    def _run_job(self, job: _Job) -> None:
        try:
            if not job.transaction:
                self._reply([(job.future, job.fn(self._db))])
                return
            with transaction(self._db):
                result = job.fn(self._db)
        except Exception as exc:
            self._reply([(job.future, exc)])
            return
        self._reply([(job.future, result)])

    # --- reads ------------------------------------------------------------------------------

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        try:
            db = self._readers.get_nowait()
        except queue.Empty:
            db = self._connect()
            self._all_readers.append(db)
        try:
            return fn(db)
        finally:
            self._readers.put(db)

    async def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Runs ``fn(connection)`` on a reader connection in a worker thread."""
        return await asyncio.to_thread(self._read, fn)

    async def query(
        self,
        flt: QueryFilter,
        limit: int,
        follow: bool,
        stopping: asyncio.Event | None = None,
    ) -> AsyncGenerator[list[Row], None]:
        """Yields pages of matching rows in the documented order (see docs/log.md).

        History: the newest ``limit`` matches (all when 0), oldest first, ordered by
        (timestamp, arrival). With ``follow``, then every later arrival that matches, in
        arrival order, until the caller stops iterating or ``stopping`` is set. A follow
        beyond the follower limit raises ResourceExhaustedError before anything is sent.
        """
        # Register before taking the history's high-water mark: every row stored after it is
        # then either in the follower's backlog or found by the catch-up query.
        follower = self.followers.add(flt) if follow else None
        try:
            high = self.last_seq
            async for page in self._history(flt, limit, high):
                yield page
            if follower is not None:
                async for page in self._follow(follower, high, stopping):
                    yield page
        finally:
            if follower is not None:
                self.followers.remove(follower)

    async def _history(self, flt: QueryFilter, limit: int, high: int) -> AsyncIterator[list[Row]]:
        if 0 < limit <= PAGE_ROWS:
            rows = await self.read(lambda db: newest_rows(db, flt, limit, high))
            if rows:
                yield rows
            return
        after = None
        if limit > 0:
            after = await self.read(lambda db: _page_start(db, flt, limit, high))
        while True:
            page: list[Row] = await self.read(partial(_page, flt=flt, after=after, high_seq=high))
            if not page:
                return
            yield page
            after = (page[-1][2], page[-1][0])

    async def _follow(
        self, follower: Follower, seen: int, stopping: asyncio.Event | None
    ) -> AsyncIterator[list[Row]]:
        """New matching rows after key ``seen``, in arrival order."""
        flt = follower.flt
        while stopping is None or not stopping.is_set():
            if follower.overflowed:
                # Fell too far behind: read what was missed from the database instead.
                follower.restart()
                high = self.last_seq
                while seen < high:
                    page: list[Row] = await self.read(
                        partial(_arrived_after, flt=flt, seq=seen, high_seq=high)
                    )
                    if not page:
                        break
                    seen = page[-1][0]
                    yield page
                seen = max(seen, high)
                continue
            rows = [row for row in follower.take() if row[0] > seen]
            if not rows:
                await _first_of(follower.ready, stopping)
                continue
            for i in range(0, len(rows), PAGE_ROWS):
                yield rows[i : i + PAGE_ROWS]
            seen = rows[-1][0]

    # --- retention --------------------------------------------------------------------------

    async def used_bytes(self) -> int:
        """Bytes the store takes on disk: the database's pages in use (free pages excluded)
        plus the write-ahead log file."""

        def measure(db: sqlite3.Connection) -> int:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
            return int((pages - free) * size)

        wal = self.path.with_name(self.path.name + "-wal")
        try:
            wal_bytes = wal.stat().st_size
        except FileNotFoundError:
            wal_bytes = 0
        return int(await self.read(measure)) + wal_bytes

    async def checkpoint(self) -> None:
        """Copies the write-ahead log into the database and truncates it (on the writer
        thread, between commits)."""

        def run(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put(_Job(run, future, transaction=False))
        await future

    async def delete_oldest(self, arrived_before_ns: int | None = None) -> int:
        """Deletes up to one chunk of the entries that arrived first (only those that arrived
        before ``arrived_before_ns`` if given); returns how many were deleted.

        Arrival, not the client's timestamp, decides: an entry a client dated 1970 or 2200
        is kept as long as any other."""

        def delete(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT seq, ts, related, coalesce(arrived, ts) FROM entries "
                f"ORDER BY seq LIMIT {RETENTION_CHUNK}"
            ).fetchall()
            if arrived_before_ns is not None:
                # Arrival order is seq order: stop at the first entry young enough to keep.
                keep = next(
                    (i for i, row in enumerate(rows) if row[3] >= arrived_before_ns), len(rows)
                )
                rows = rows[:keep]
            refs = [(oid, ts, seq) for seq, ts, rel, _ in rows if rel for oid in rel.split(_SEP)]
            db.executemany("DELETE FROM refs WHERE object_id=? AND ts=? AND seq=?", refs)
            db.executemany("DELETE FROM entries WHERE seq=?", [(r[0],) for r in rows])
            return len(rows)

        return int(await self.run_job(delete))

    async def close(self) -> None:
        """Finishes queued writes, stops the writer and closes every connection."""
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._writer.join)
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        for db in self._all_readers:
            db.close()


async def _first_of(event: asyncio.Event, other: asyncio.Event | None) -> None:
    if other is None:
        await event.wait()
        return
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _where(flt: QueryFilter, high_seq: int) -> tuple[str, str, list[Any]]:
    """FROM/WHERE for a history query and the ORDER BY key columns; uses the inverted index
    when an object id is given."""
    args: list[Any]
    if flt.object_id is not None:
        source = "refs r JOIN entries e ON e.seq = r.seq"
        where = "r.object_id = ? AND r.ts BETWEEN ? AND ? AND r.seq <= ?"
        args = [flt.object_id, flt.start_ns, flt.end_ns, high_seq]
        key = "r"
    else:
        source = "entries e"
        where = "e.ts BETWEEN ? AND ? AND e.seq <= ?"
        args = [flt.start_ns, flt.end_ns, high_seq]
        key = "e"
    if flt.component is not None:
        where += " AND e.component = ?"
        args.append(flt.component)
    return f"FROM {source} WHERE {where}", key, args


def newest_rows(db: sqlite3.Connection, flt: QueryFilter, limit: int, high_seq: int) -> list[Row]:
    """The newest ``limit`` matches, oldest first."""
    base, k, args = _where(flt, high_seq)
    rows = db.execute(
        f"SELECT {_COLUMNS} {base} ORDER BY {k}.ts DESC, {k}.seq DESC LIMIT ?", [*args, limit]
    ).fetchall()
    rows.reverse()
    return rows


def _page_start(
    db: sqlite3.Connection, flt: QueryFilter, limit: int, high_seq: int
) -> tuple[int, int] | None:
    """The key just before the oldest of the newest ``limit`` matches (None: from the start)."""
    base, k, args = _where(flt, high_seq)
    first = db.execute(
        f"SELECT {k}.ts, {k}.seq {base} ORDER BY {k}.ts DESC, {k}.seq DESC LIMIT 1 OFFSET ?",
        [*args, limit - 1],
    ).fetchone()
    return None if first is None else (first[0], first[1] - 1)


def _page(
    db: sqlite3.Connection, flt: QueryFilter, after: tuple[int, int] | None, high_seq: int
) -> list[Row]:
    """Up to PAGE_ROWS matches after key ``after``, oldest first."""
    base, k, args = _where(flt, high_seq)
    cond = ""
    if after is not None:
        cond = f" AND ({k}.ts, {k}.seq) > (?, ?)"
        args = [*args, *after]
    return db.execute(
        f"SELECT {_COLUMNS} {base}{cond} ORDER BY {k}.ts, {k}.seq LIMIT {PAGE_ROWS}", args
    ).fetchall()


def _arrived_after(db: sqlite3.Connection, flt: QueryFilter, seq: int, high_seq: int) -> list[Row]:
    """Up to PAGE_ROWS matches stored after key ``seq`` (through ``high_seq``), in arrival
    order; the filter runs in SQL (the inverted index when an object id is given)."""
    args: list[Any]
    if flt.object_id is not None:
        sql = (
            f"SELECT {_COLUMNS} FROM refs r JOIN entries e ON e.seq = r.seq "
            "WHERE r.object_id = ? AND r.seq > ? AND r.seq <= ? AND r.ts BETWEEN ? AND ?"
        )
        args = [flt.object_id, seq, high_seq, flt.start_ns, flt.end_ns]
    else:
        sql = (
            f"SELECT {_COLUMNS} FROM entries e "
            "WHERE e.seq > ? AND e.seq <= ? AND e.ts BETWEEN ? AND ?"
        )
        args = [seq, high_seq, flt.start_ns, flt.end_ns]
    if flt.component is not None:
        sql += " AND e.component = ?"
        args.append(flt.component)
    return db.execute(f"{sql} ORDER BY e.seq LIMIT {PAGE_ROWS}", args).fetchall()
