"""ULIDs and endpoint strings."""

from __future__ import annotations

import threading

import pytest

from mvirt.daemon.endpoint import grpc_target
from mvirt.daemon.ulid import UlidGenerator, is_ulid, new_ulid


def test_ulids_increase_within_one_millisecond_and_across_threads() -> None:
    gen = UlidGenerator()
    same_ms = [gen.new(1_700_000_000_000_000_000) for _ in range(1000)]
    assert same_ms == sorted(same_ms) and len(set(same_ms)) == 1000
    made: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        for _ in range(500):
            value = new_ulid()
            with lock:
                made.append(value)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 2000


def test_ulid_sorts_by_timestamp_and_clock_going_back_keeps_order() -> None:
    gen = UlidGenerator()
    a = gen.new(2_000_000_000_000_000_000)
    b = gen.new(1_000_000_000_000_000_000)  # clock stepped back
    assert is_ulid(a) and is_ulid(b) and a < b
    assert new_ulid(1_000_000_000_000_000_000) < new_ulid(1_000_000_001_000_000_000)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",
        "81ARZ3NDEKTSV4RRFFQ69G5FAV",
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",
    ],
)
def test_malformed_ulids_are_rejected(value: str) -> None:
    assert not is_ulid(value)


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("[::1]:50052", "[::1]:50052"),
        ("http://[::1]:50052", "[::1]:50052"),
        ("http://localhost:50052/", "localhost:50052"),
        ("127.0.0.1:1", "127.0.0.1:1"),
    ],
)
def test_endpoints_become_grpc_targets(endpoint: str, target: str) -> None:
    assert grpc_target(endpoint) == target


@pytest.mark.parametrize(
    "endpoint", ["", "localhost", "host:0", "host:70000", "ftp://h:1", "::1:5"]
)
def test_bad_endpoints_say_what_is_expected(endpoint: str) -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        grpc_target(endpoint)
