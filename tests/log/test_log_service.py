"""mvirt-log against the real daemon: writes, queries by id and time, order, limit, follow."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from mvirt.daemon.ulid import is_ulid, new_ulid
from mvirt.proto import log_pb2, log_pb2_grpc


def entry(message: str, *ids: str, ts: int = 0, component: str = "test") -> log_pb2.LogEntry:
    return log_pb2.LogEntry(
        message=message,
        timestamp_ns=ts,
        component=component,
        related_object_ids=ids,
        level=log_pb2.AUDIT,
    )


def query(stub: log_pb2_grpc.LogServiceStub, **kwargs: object) -> list[log_pb2.LogEntry]:
    return list(stub.Query(log_pb2.QueryRequest(**kwargs), timeout=10))  # type: ignore[arg-type]


@pytest.fixture
def stub(log_daemon):
    with log_daemon.channel() as channel:
        yield log_pb2_grpc.LogServiceStub(channel)


def test_log_returns_time_sortable_ids(stub) -> None:
    ids = [stub.Log(log_pb2.LogRequest(entry=entry(f"m{i}", "vm-1"))).id for i in range(20)]
    assert all(is_ulid(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 20


def test_entry_is_found_by_each_related_id(stub) -> None:
    stub.Log(log_pb2.LogRequest(entry=entry("attach", "vm-1", "disk-1", "net-1")))
    stub.Log(log_pb2.LogRequest(entry=entry("other", "vm-2")))
    for object_id in ("vm-1", "disk-1", "net-1"):
        found = query(stub, object_id=object_id)
        assert [e.message for e in found] == ["attach"]
        assert list(found[0].related_object_ids) == ["vm-1", "disk-1", "net-1"]
        assert found[0].component == "test"
        assert found[0].level == log_pb2.AUDIT
    assert [e.message for e in query(stub, object_id="vm-2")] == ["other"]
    assert query(stub, object_id="vm-3") == []
    assert [e.message for e in query(stub)] == ["attach", "other"]


def test_time_range_is_inclusive_and_order_is_by_timestamp(stub) -> None:
    base = 1_700_000_000_000_000_000
    # Written out of order: results come back ordered by timestamp.
    for offset in (3, 1, 4, 2, 5):
        stub.Log(log_pb2.LogRequest(entry=entry(f"t{offset}", "vm-t", ts=base + offset)))
    got = query(stub, object_id="vm-t", start_time_ns=base + 2, end_time_ns=base + 4)
    assert [e.message for e in got] == ["t2", "t3", "t4"]
    assert [e.message for e in query(stub, start_time_ns=base + 5)] == ["t5"]
    assert [e.message for e in query(stub, end_time_ns=base + 1)] == ["t1"]
    assert [e.timestamp_ns for e in query(stub, object_id="vm-t")] == [
        base + i for i in range(1, 6)
    ]


def test_limit_returns_the_newest_matches_oldest_first(stub) -> None:
    stub.LogBatch(
        log_pb2.LogBatchRequest(entries=[entry(f"n{i}", "vm-l", ts=1000 + i) for i in range(50)])
    )
    assert [e.message for e in query(stub, object_id="vm-l", limit=3)] == ["n47", "n48", "n49"]
    assert [e.message for e in query(stub, limit=2)] == ["n48", "n49"]
    assert len(query(stub, object_id="vm-l", limit=0)) == 50


def test_large_results_page_through_in_order(stub) -> None:
    stub.LogBatch(
        log_pb2.LogBatchRequest(entries=[entry(f"p{i}", "vm-p", ts=10 + i) for i in range(2500)])
    )
    everything = query(stub, object_id="vm-p")
    assert [e.timestamp_ns for e in everything] == [10 + i for i in range(2500)]
    newest = query(stub, object_id="vm-p", limit=1200)
    assert [e.timestamp_ns for e in newest] == [10 + i for i in range(1300, 2500)]


def test_component_filter(stub) -> None:
    stub.Log(log_pb2.LogRequest(entry=entry("from vmm", "vm-c", component="vmm")))
    stub.Log(log_pb2.LogRequest(entry=entry("from zfs", "vm-c", component="zfs")))
    assert [e.message for e in query(stub, component="zfs")] == ["from zfs"]
    assert [e.message for e in query(stub, object_id="vm-c", component="vmm")] == ["from vmm"]


def test_batch_returns_ids_in_request_order_and_retry_does_not_duplicate(stub) -> None:
    ids = [new_ulid() for _ in range(5)]
    batch = [entry(f"b{i}", "vm-b") for i in range(5)]
    for e, i in zip(batch, ids, strict=True):
        e.id = i
    first = stub.LogBatch(log_pb2.LogBatchRequest(entries=batch))
    again = stub.LogBatch(log_pb2.LogBatchRequest(entries=batch))
    assert list(first.ids) == ids == list(again.ids)
    assert [e.id for e in query(stub, object_id="vm-b")] == ids


def test_same_id_with_different_content_is_already_exists(stub) -> None:
    first = entry("original", "vm-id", ts=1000)
    first.id = new_ulid()
    stub.Log(log_pb2.LogRequest(entry=first))
    changed = entry("changed", "vm-id", ts=1000)
    changed.id = first.id
    with pytest.raises(grpc.RpcError) as err:
        stub.Log(log_pb2.LogRequest(entry=changed))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"entry.id {first.id} is stored already with different content" in err.value.details()
    other = entry("other", "vm-id")
    with pytest.raises(grpc.RpcError) as err:
        stub.LogBatch(log_pb2.LogBatchRequest(entries=[other, changed]))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"entries[1].id {first.id}" in err.value.details()
    # The same id twice in one batch with different content: refused as well.
    twin = entry("twin", "vm-id")
    twin.id = new_ulid()
    twin_changed = entry("twin changed", "vm-id")
    twin_changed.id = twin.id
    with pytest.raises(grpc.RpcError) as err:
        stub.LogBatch(log_pb2.LogBatchRequest(entries=[twin, twin_changed]))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # Nothing of the refused calls was stored; an exact retry is still fine.
    assert [e.message for e in query(stub, object_id="vm-id")] == ["original"]
    assert stub.Log(log_pb2.LogRequest(entry=first)).id == first.id
    # A retry of an entry sent without a timestamp (server time) matches whatever time it got.
    untimed = entry("untimed", "vm-id")
    untimed.id = new_ulid()
    stub.Log(log_pb2.LogRequest(entry=untimed))
    assert stub.Log(log_pb2.LogRequest(entry=untimed)).id == untimed.id
    assert [e.message for e in query(stub, object_id="vm-id")] == ["original", "untimed"]


def test_follow_streams_history_then_new_entries(stub) -> None:
    stub.Log(log_pb2.LogRequest(entry=entry("before", "vm-f")))
    stream = stub.Query(log_pb2.QueryRequest(object_id="vm-f", follow=True), timeout=20)
    assert next(stream).message == "before"
    stub.Log(log_pb2.LogRequest(entry=entry("unrelated", "vm-x")))
    stub.Log(log_pb2.LogRequest(entry=entry("after-1", "vm-f")))
    stub.LogBatch(log_pb2.LogBatchRequest(entries=[entry("after-2", "vm-f", "vm-x")]))
    assert next(stream).message == "after-1"
    assert next(stream).message == "after-2"
    stream.cancel()
    # The daemon keeps serving after a follower went away.
    assert [e.message for e in query(stub, object_id="vm-f")] == ["before", "after-1", "after-2"]


def test_follow_without_filter_sees_entries_from_other_clients(log_daemon, stub) -> None:
    stream = stub.Query(log_pb2.QueryRequest(follow=True), timeout=20)
    with log_daemon.channel() as other:
        writer = log_pb2_grpc.LogServiceStub(other)
        for i in range(3):
            writer.Log(log_pb2.LogRequest(entry=entry(f"live{i}", "vm-o")))
    assert [next(stream).message for _ in range(3)] == ["live0", "live1", "live2"]
    stream.cancel()


def test_eight_concurrent_writers_lose_and_duplicate_nothing(log_daemon, stub) -> None:
    writers, per_writer = 8, 150
    acknowledged: list[list[str]] = [[] for _ in range(writers)]
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with log_daemon.channel() as channel:
                own = log_pb2_grpc.LogServiceStub(channel)
                for i in range(per_writer):
                    if i % 3 == 0:
                        reply = own.LogBatch(
                            log_pb2.LogBatchRequest(entries=[entry(f"w{n}-{i}", f"writer-{n}")])
                        )
                        acknowledged[n].extend(reply.ids)
                    else:
                        reply = own.Log(log_pb2.LogRequest(entry=entry(f"w{n}-{i}", f"writer-{n}")))
                        acknowledged[n].append(reply.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = query(stub)
    assert len(stored) == writers * per_writer
    assert len({e.id for e in stored}) == len(stored)
    assert {e.id for e in stored} == {i for ids in acknowledged for i in ids}
    for n in range(writers):
        mine = query(stub, object_id=f"writer-{n}")
        # One writer's entries come back in the order it wrote them.
        assert [e.message for e in mine] == [f"w{n}-{i}" for i in range(per_writer)]


def test_server_sets_timestamp_when_zero(stub) -> None:
    before = time.time_ns()
    stub.Log(log_pb2.LogRequest(entry=entry("now", "vm-n")))
    (got,) = query(stub, object_id="vm-n")
    assert before <= got.timestamp_ns <= time.time_ns()


def test_get_version(stub) -> None:
    assert stub.GetVersion(log_pb2.GetVersionRequest()).version


def test_unknown_method_is_unimplemented(log_daemon) -> None:
    with log_daemon.channel() as channel:
        call = channel.unary_unary("/mvirt.log.LogService/Nope")
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_query_pages_returns_what_query_returns(stub) -> None:
    stub.LogBatch(
        log_pb2.LogBatchRequest(entries=[entry(f"q{i}", "vm-q", ts=100 + i) for i in range(2500)])
    )
    for request in (
        log_pb2.QueryRequest(object_id="vm-q"),
        log_pb2.QueryRequest(object_id="vm-q", limit=1500),
        log_pb2.QueryRequest(object_id="vm-q", limit=10, start_time_ns=105, end_time_ns=200),
    ):
        pages = list(stub.QueryPages(request, timeout=10))
        flat = [e for page in pages for e in page.entries]
        assert flat == list(stub.Query(request, timeout=10))
        assert len(pages) < max(2, len(flat))  # many entries per message


def test_query_pages_follow_sends_new_entries(stub) -> None:
    pages = stub.QueryPages(log_pb2.QueryRequest(object_id="vm-g", follow=True), timeout=20)
    stub.Log(log_pb2.LogRequest(entry=entry("later", "vm-g")))
    assert [e.message for e in next(pages).entries] == ["later"]
    pages.cancel()


def test_query_pages_of_large_entries_fit_a_default_client(stub) -> None:
    big = [entry(f"{i:04} " + "x" * 16_000, "vm-big-pages") for i in range(600)]
    for i in range(0, 600, 200):
        stub.LogBatch(log_pb2.LogBatchRequest(entries=big[i : i + 200]), timeout=60)
    # 600 entries of 16 KB: about 10 MB, more than a client takes in one message by default.
    pages = list(stub.QueryPages(log_pb2.QueryRequest(object_id="vm-big-pages"), timeout=60))
    assert len(pages) > 1
    assert [e.message[:4] for p in pages for e in p.entries] == [f"{i:04}" for i in range(600)]
