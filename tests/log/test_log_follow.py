"""Follow queries against the real daemon: many followers, slow followers, cancelled followers."""

from __future__ import annotations

import itertools
import time

import grpc
import pytest

from mvirt.daemon import log_limits as limits
from mvirt.proto import log_pb2, log_pb2_grpc


def entry(message: str, *ids: str) -> log_pb2.LogEntry:
    return log_pb2.LogEntry(message=message, component="test", related_object_ids=ids)


def log(stub: log_pb2_grpc.LogServiceStub, *entries: log_pb2.LogEntry) -> None:
    stub.LogBatch(log_pb2.LogBatchRequest(entries=entries), timeout=30)


@pytest.mark.slow
def test_follower_limit_and_every_follower_gets_new_entries(log_daemon) -> None:
    channels = [log_daemon.channel() for _ in range(4)]
    stubs = [log_pb2_grpc.LogServiceStub(c) for c in channels]
    log(stubs[0], entry("history", "vm-many"))
    streams = []
    try:
        for i, stub in zip(range(limits.MAX_FOLLOWERS), itertools.cycle(stubs)):
            object_id = "vm-many" if i % 2 else None
            request = log_pb2.QueryRequest(follow=True, limit=1)
            if object_id:
                request.object_id = object_id
            stream = stub.Query(request, timeout=120)
            assert next(stream).message == "history"  # the stream is open
            streams.append(stream)
        with pytest.raises(grpc.RpcError) as err:
            next(stubs[0].Query(log_pb2.QueryRequest(follow=True), timeout=30))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"the limit is {limits.MAX_FOLLOWERS}" in err.value.details()
        # A query without follow is not limited.
        assert len(list(stubs[1].Query(log_pb2.QueryRequest(limit=1), timeout=30))) == 1

        log(stubs[0], entry("new", "vm-many"), entry("other", "vm-other"))
        for stream in streams:
            assert next(stream).message == "new"
        streams.pop().cancel()
        deadline = time.monotonic() + 30
        while True:  # the slot is free once the daemon has seen the cancellation
            try:
                again = stubs[2].Query(log_pb2.QueryRequest(follow=True, limit=1), timeout=60)
                assert next(again).message in ("new", "other")
                again.cancel()
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        for stream in streams:
            stream.cancel()
        for channel in channels:
            channel.close()
    assert log_daemon.terminate() == 0
    assert "Traceback" not in log_daemon.stderr()


@pytest.mark.slow
def test_follower_that_falls_far_behind_gets_every_entry_once_in_order(log_daemon) -> None:
    with log_daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        slow = stub.QueryPages(log_pb2.QueryRequest(object_id="vm-slow", follow=True), timeout=300)
        everything = stub.QueryPages(log_pb2.QueryRequest(follow=True), timeout=300)
        log(stub, entry("start", "vm-slow"))
        assert [e.message for e in next(slow).entries] == ["start"]
        assert [e.message for e in next(everything).entries] == ["start"]
        # Far more than a follower may have waiting, while neither stream is read.
        expected = ["start"]
        for batch in range(6):
            pad = "p" * 600  # big enough that the unread streams stall in flow control
            entries = [entry(f"e{batch}-{i} {pad}", "vm-slow", f"x-{i % 7}") for i in range(5000)]
            entries.append(entry(f"unrelated-{batch}", "vm-else"))
            log(stub, *entries)
            expected += [e.message for e in entries[:-1]]
        log(stub, entry("last", "vm-slow"))
        expected.append("last")

        def read_until_last(stream) -> list[str]:
            got: list[str] = []
            for page in stream:
                got += [e.message for e in page.entries]
                if got[-1] == "last":
                    return got
            raise AssertionError("stream ended")

        assert ["start", *read_until_last(slow)] == expected
        all_messages = ["start", *read_until_last(everything)]
        assert [m for m in all_messages if not m.startswith("unrelated")] == expected
        assert len(all_messages) == len(expected) + 6
        slow.cancel()
        everything.cancel()


def test_cancelled_followers_leave_no_errors_in_the_daemon_log(log_daemon) -> None:
    """Followers cancelled at every point (idle, while entries pour in, mid-page) and some
    still open at shutdown: the daemon logs no traceback and no error."""
    with log_daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        log(stub, entry("history", "vm-c"))
        for round_ in range(4):
            streams = [
                (stub.QueryPages if i % 2 else stub.Query)(
                    log_pb2.QueryRequest(object_id="vm-c", follow=True), timeout=60
                )
                for i in range(30)
            ]
            for stream in streams:
                next(stream)  # open: the history arrived
            for i, stream in enumerate(streams):
                if i % 3 == 0:
                    stream.cancel()  # idle
            log(stub, *[entry(f"r{round_}-{i}", "vm-c") for i in range(3000)])
            for i, stream in enumerate(streams):
                if i % 3 == 1:
                    next(stream)
                    stream.cancel()  # while entries are waiting for it
            if round_ < 3:
                for stream in streams:
                    stream.cancel()
        # The last round's remaining followers are still open when the daemon stops.
        assert log_daemon.terminate() == 0
    stderr = log_daemon.stderr()
    assert "Traceback" not in stderr
    assert '"level": "error"' not in stderr


def test_followers_by_component_and_time_get_only_their_entries(log_daemon) -> None:
    with log_daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)

        def follow(**fields: object):
            request = log_pb2.QueryRequest(follow=True, **fields)  # type: ignore[arg-type]
            return stub.QueryPages(request, timeout=60)

        by_component = follow(component="zfs")
        by_both = follow(component="zfs", object_id="vol-1")
        from_time = follow(start_time_ns=5_000)
        log(
            stub,
            log_pb2.LogEntry(
                message="a", component="vmm", related_object_ids=["vol-1"], timestamp_ns=9_000
            ),
            log_pb2.LogEntry(
                message="b", component="zfs", related_object_ids=["vol-2"], timestamp_ns=1_000
            ),
            log_pb2.LogEntry(
                message="c", component="zfs", related_object_ids=["vol-1"], timestamp_ns=9_000
            ),
        )
        assert [e.message for e in next(by_component).entries] == ["b", "c"]
        assert [e.message for e in next(by_both).entries] == ["c"]
        assert [e.message for e in next(from_time).entries] == ["a", "c"]
        for stream in (by_component, by_both, from_time):
            stream.cancel()
