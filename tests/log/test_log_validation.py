"""Malformed requests get INVALID_ARGUMENT naming the field, and the daemon keeps serving."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from mvirt.daemon import log_limits as limits
from mvirt.proto import log_pb2, log_pb2_grpc
from tests.conftest import DaemonProcess


def good(**fields: object) -> log_pb2.LogEntry:
    base: dict[str, object] = {"message": "ok", "component": "vmm", "related_object_ids": ["vm-1"]}
    base.update(fields)
    return log_pb2.LogEntry(**base)  # type: ignore[arg-type]


BAD_ENTRIES = {
    "id not a ulid": (good(id="not-a-ulid"), "entry.id"),
    "id lower case": (good(id="01arz3ndektsv4rrffq69g5fav"), "entry.id"),
    "negative timestamp": (good(timestamp_ns=-1), "entry.timestamp_ns"),
    "empty message": (good(message=""), "entry.message"),
    "message too long": (good(message="x" * (limits.MAX_MESSAGE_BYTES + 1)), "entry.message"),
    "unknown level": (good(level=99), "entry.level"),
    "component with space": (good(component="my vmm"), "entry.component"),
    "component upper case": (good(component="VMM"), "entry.component"),
    "too many related ids": (
        good(related_object_ids=[f"o{i}" for i in range(limits.MAX_RELATED_IDS + 1)]),
        "entry.related_object_ids",
    ),
    "empty related id": (good(related_object_ids=["vm-1", ""]), "related_object_ids[1]"),
    "related id with newline": (good(related_object_ids=["a\nb"]), "related_object_ids[0]"),
    "related id too long": (good(related_object_ids=["a" * 129]), "related_object_ids[0]"),
}

BAD_QUERIES = {
    "object id with space": (log_pb2.QueryRequest(object_id="vm 1"), "object_id"),
    "empty object id": (log_pb2.QueryRequest(object_id=""), "object_id"),
    "bad component": (log_pb2.QueryRequest(component="A B"), "component"),
    "negative start": (log_pb2.QueryRequest(start_time_ns=-5), "start_time_ns"),
    "negative end": (log_pb2.QueryRequest(end_time_ns=-5), "end_time_ns"),
    "start after end": (log_pb2.QueryRequest(start_time_ns=10, end_time_ns=9), "start_time_ns"),
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    proc = DaemonProcess("mvirt.log", tmp_path_factory.mktemp("validation") / "data").start()
    yield proc
    assert proc.terminate() == 0


@pytest.fixture
def stub(daemon):
    with daemon.channel() as channel:
        yield log_pb2_grpc.LogServiceStub(channel)


def assert_still_serving(stub) -> None:
    reply = stub.Log(log_pb2.LogRequest(entry=good(message="still here")))
    assert reply.id


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_bad_entry_in_log_is_invalid_argument(stub, case: str) -> None:
    bad, field = BAD_ENTRIES[case]
    with pytest.raises(grpc.RpcError) as err:
        stub.Log(log_pb2.LogRequest(entry=bad), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
    assert_still_serving(stub)


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_bad_entry_in_batch_names_its_index_and_stores_nothing(stub, case: str) -> None:
    bad, field = BAD_ENTRIES[case]
    marker = f"batch-{abs(hash(case))}"
    entries = [good(related_object_ids=[marker]), bad]
    with pytest.raises(grpc.RpcError) as err:
        stub.LogBatch(log_pb2.LogBatchRequest(entries=entries), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field.replace("entry.", "entries[1].") in err.value.details()
    # No half-written batch: the valid first entry was not stored either.
    assert list(stub.Query(log_pb2.QueryRequest(object_id=marker), timeout=10)) == []


def test_missing_entry_and_empty_or_oversized_batch(stub) -> None:
    for call, request, field in (
        (stub.Log, log_pb2.LogRequest(), "entry is missing"),
        (stub.LogBatch, log_pb2.LogBatchRequest(), "entries is empty"),
        (
            stub.LogBatch,
            log_pb2.LogBatchRequest(entries=[good()] * (limits.MAX_BATCH_ENTRIES + 1)),
            "the limit is",
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in err.value.details()
    assert_still_serving(stub)


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_bad_query_is_invalid_argument(stub, case: str) -> None:
    request, field = BAD_QUERIES[case]
    for call in (stub.Query, stub.QueryPages):
        with pytest.raises(grpc.RpcError) as err:
            list(call(request, timeout=10))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in err.value.details()
    assert_still_serving(stub)


def test_undecodable_request_bytes_are_rejected_and_daemon_survives(daemon, stub) -> None:
    with daemon.channel() as channel:
        raw = channel.unary_unary("/mvirt.log.LogService/Log")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff\xff", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not be decoded" in err.value.details()
    assert_still_serving(stub)


def test_request_size_limit_is_invalid_argument_naming_the_limit(stub) -> None:
    entry_bytes = good(message="x" * 15_000).ByteSize()
    fits = limits.MAX_REQUEST_BYTES // (entry_bytes + 8)
    marker = "vm-size"
    just_under = [good(message="x" * 15_000, related_object_ids=[marker]) for _ in range(fits)]
    assert len(stub.LogBatch(log_pb2.LogBatchRequest(entries=just_under), timeout=60).ids) == fits
    over = [good(message="x" * 15_000, related_object_ids=[marker]) for _ in range(fits + 20)]
    with pytest.raises(grpc.RpcError) as err:
        stub.LogBatch(log_pb2.LogBatchRequest(entries=over), timeout=60)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"the limit is {limits.MAX_REQUEST_BYTES} bytes" in err.value.details()
    # Far beyond the limit, gRPC refuses the request before reading it.
    huge = [good(message="x" * 15_000) for _ in range(2 * fits + 100)]
    with pytest.raises(grpc.RpcError) as err:
        stub.LogBatch(log_pb2.LogBatchRequest(entries=huge), timeout=60)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(list(stub.Query(log_pb2.QueryRequest(object_id=marker), timeout=30))) == fits
    assert_still_serving(stub)


def test_documented_limits_are_the_enforced_ones() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "log.md").read_text()
    for value in (
        limits.MAX_MESSAGE_BYTES,
        limits.MAX_RELATED_IDS,
        limits.MAX_BATCH_ENTRIES,
        limits.MAX_REQUEST_BYTES,
        limits.MAX_RECEIVE_BYTES,
        limits.MAX_CONCURRENT_RPCS,
        limits.MAX_FOLLOWERS,
    ):
        assert f"{value:,}" in doc, f"docs/log.md does not state the limit {value:,}"
