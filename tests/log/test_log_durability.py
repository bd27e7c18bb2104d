"""Acknowledged entries survive kill -9; shutdown and retention behave as documented."""

from __future__ import annotations

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


def test_retention_by_age_deletes_old_entries_in_the_background(start_log_daemon) -> None:
    daemon = start_log_daemon("--max-age", "1h", "--retention-interval", "1s")
    old = time.time_ns() - 2 * 3600 * 10**9
    with daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        stub.LogBatch(
            log_pb2.LogBatchRequest(
                entries=[entry(f"old{i}", "vm-a", ts=old + i) for i in range(3000)]
            )
        )
        stub.Log(log_pb2.LogRequest(entry=entry("new", "vm-a")))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            left = [e.message for e in stub.Query(log_pb2.QueryRequest(object_id="vm-a"))]
            if left == ["new"]:
                break
            # Writes are accepted while retention runs.
            stub.Log(log_pb2.LogRequest(entry=entry("during", "vm-b")))
            time.sleep(0.2)
        assert left == ["new"]
        assert list(stub.Query(log_pb2.QueryRequest(object_id="vm-b")))


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
