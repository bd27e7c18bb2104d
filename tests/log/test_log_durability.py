"""Acknowledged entries survive kill -9; shutdown and retention behave as documented."""

from __future__ import annotations

import sqlite3
import threading
import time

import grpc
import pytest

from mvirt.proto import log_pb2, log_pb2_grpc


def entry(message: str, *ids: str, ts: int = 0) -> log_pb2.LogEntry:
    return log_pb2.LogEntry(
        message=message, component="test", related_object_ids=ids, timestamp_ns=ts
    )


@pytest.mark.slow
def test_kill_9_during_ingest_keeps_every_acknowledged_entry(start_log_daemon, tmp_path) -> None:
    daemon = start_log_daemon()
    acknowledged: list[set[str]] = [set() for _ in range(4)]
    stop = threading.Event()

    def ingest(n: int) -> None:
        with daemon.channel() as channel:
            stub = log_pb2_grpc.LogServiceStub(channel)
            i = 0
            while not stop.is_set():
                try:
                    if n % 2:
                        batch = [entry(f"k{n}-{i}-{j}", f"ingest-{n}") for j in range(50)]
                        reply = stub.LogBatch(log_pb2.LogBatchRequest(entries=batch), timeout=5)
                        acknowledged[n].update(reply.ids)
                    else:
                        reply1 = stub.Log(
                            log_pb2.LogRequest(entry=entry(f"k{n}-{i}", f"ingest-{n}")), timeout=5
                        )
                        acknowledged[n].add(reply1.id)
                except grpc.RpcError:
                    return  # the daemon is gone
                i += 1

    threads = [threading.Thread(target=ingest, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    daemon.kill()
    stop.set()
    for t in threads:
        t.join(10)
    total = sum(len(a) for a in acknowledged)
    assert total > 100, "the writers should have had entries acknowledged before the kill"

    restarted = start_log_daemon(data_dir=daemon.data_dir)
    with restarted.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        stored = {e.id for e in stub.Query(log_pb2.QueryRequest(), timeout=60)}
        for n in range(4):
            assert acknowledged[n] <= stored
            by_object = {
                e.id for e in stub.Query(log_pb2.QueryRequest(object_id=f"ingest-{n}"), timeout=60)
            }
            assert acknowledged[n] <= by_object
        # Writing goes on after the restart.
        assert stub.Log(log_pb2.LogRequest(entry=entry("after restart", "ingest-0"))).id


def test_sigterm_ends_follow_streams_and_exits_zero(log_daemon) -> None:
    with log_daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        stub.Log(log_pb2.LogRequest(entry=entry("one", "vm-s")))
        stream = stub.Query(log_pb2.QueryRequest(follow=True), timeout=30)
        assert next(stream).message == "one"
        assert log_daemon.terminate() == 0
        # The stream ends (cleanly or as cancelled), it does not hang.
        with pytest.raises((StopIteration, grpc.RpcError)):
            next(stream)
    assert "Traceback" not in log_daemon.stderr()


def test_restart_keeps_data_and_ids_keep_increasing(start_log_daemon) -> None:
    first = start_log_daemon()
    with first.channel() as channel:
        before = (
            log_pb2_grpc.LogServiceStub(channel)
            .Log(log_pb2.LogRequest(entry=entry("a", "vm-r")))
            .id
        )
    assert first.terminate() == 0
    second = start_log_daemon(data_dir=first.data_dir)
    with second.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        after = stub.Log(log_pb2.LogRequest(entry=entry("b", "vm-r"))).id
        assert [e.id for e in stub.Query(log_pb2.QueryRequest(object_id="vm-r"))] == [before, after]
    assert before < after


def test_retention_by_age_counts_from_arrival_not_from_the_clients_timestamp(
    start_log_daemon,
) -> None:
    daemon = start_log_daemon("--max-age", "4s", "--retention-interval", "1s")
    year_2200_ns = 7_258_118_400 * 10**9
    with daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        written = time.monotonic()
        stub.LogBatch(
            log_pb2.LogBatchRequest(
                entries=[
                    entry("dated 1970", "vm-a", ts=10**9),
                    entry("dated 2200", "vm-a", ts=year_2200_ns),
                    entry("dated now", "vm-a"),
                ]
            )
        )

        def left() -> set[str]:
            return {e.message for e in stub.Query(log_pb2.QueryRequest(object_id="vm-a"))}

        # Younger than --max-age by arrival: every retention pass in this window keeps all.
        while time.monotonic() - written < 2.5:
            assert left() == {"dated 1970", "dated 2200", "dated now"}
            time.sleep(0.1)
        # Older than --max-age by arrival: all go, whatever their timestamps say.
        deadline = time.monotonic() + 30
        while left() and time.monotonic() < deadline:
            stub.Log(log_pb2.LogRequest(entry=entry("during", "vm-b")))  # writes go on
            time.sleep(0.2)
        assert left() == set()
        assert list(stub.Query(log_pb2.QueryRequest(object_id="vm-b", limit=1)))


def store_bytes_on_disk(data_dir) -> tuple[int, int]:
    """(database pages in use in bytes, write-ahead log file size) of mvirt-log's store."""
    db_path = data_dir / "log.sqlite3"
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    wal = db_path.with_name("log.sqlite3-wal")
    return (pages - free) * size, wal.stat().st_size if wal.exists() else 0


def test_retention_by_size_counts_the_write_ahead_log(start_log_daemon) -> None:
    limit = 4 * 1024 * 1024
    daemon = start_log_daemon("--max-size", "4M", "--retention-interval", "1s")
    with daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        for b in range(3):
            stub.LogBatch(
                log_pb2.LogBatchRequest(
                    entries=[entry(f"w{b}-{i} " + "x" * 4000, "vm-w") for i in range(900)]
                ),
                timeout=60,
            )
        deadline = time.monotonic() + 30
        while sum(store_bytes_on_disk(daemon.data_dir)) > limit:
            assert time.monotonic() < deadline, store_bytes_on_disk(daemon.data_dir)
            time.sleep(0.2)
        newest = list(stub.Query(log_pb2.QueryRequest(object_id="vm-w", limit=1)))
        assert newest[0].message.startswith("w2-899 ")


def test_retention_by_size_keeps_the_newest_entries(start_log_daemon) -> None:
    daemon = start_log_daemon("--max-size", "1M", "--retention-interval", "1s")
    with daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        for b in range(10):
            stub.LogBatch(
                log_pb2.LogBatchRequest(
                    entries=[entry(f"s{b}-{i} " + "x" * 200, "vm-z") for i in range(1000)]
                )
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            count = len(list(stub.Query(log_pb2.QueryRequest(object_id="vm-z"))))
            if count < 10_000:
                break
            time.sleep(0.2)
        assert count < 10_000
        newest = list(stub.Query(log_pb2.QueryRequest(object_id="vm-z", limit=1)))
        assert newest[0].message.startswith("s9-999 ")


def test_store_from_before_arrival_times_is_upgraded_in_place(start_log_daemon, tmp_path) -> None:
    data = tmp_path / "old-store"
    data.mkdir()
    db = sqlite3.connect(data / "log.sqlite3")
    db.executescript(
        """
        CREATE TABLE entries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
          ts INTEGER NOT NULL, level INTEGER NOT NULL, component TEXT NOT NULL,
          message TEXT NOT NULL, related TEXT NOT NULL);
        CREATE INDEX entries_by_time ON entries (ts, seq);
        CREATE TABLE refs (object_id TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
          PRIMARY KEY (object_id, ts, seq)) WITHOUT ROWID;
        INSERT INTO entries VALUES (1, '01ARZ3NDEKTSV4RRFFQ69G5FAV', 1000, 4, 'vmm', 'old', 'vm-u');
        INSERT INTO refs VALUES ('vm-u', 1000, 1);
        """
    )
    db.close()
    daemon = start_log_daemon(data_dir=data)
    with daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        stub.Log(log_pb2.LogRequest(entry=entry("new", "vm-u")))
        got = [e.message for e in stub.Query(log_pb2.QueryRequest(object_id="vm-u"), timeout=10)]
    assert got == ["old", "new"]
