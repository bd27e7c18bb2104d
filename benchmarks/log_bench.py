"""mvirt-log benchmark: ingest rate, query-by-object latency and memory, next to plain SQLite.

Starts a real mvirt-log on a free loopback port with a temporary data dir and measures:

- unary ingest: ``Log`` calls, ``--concurrency`` in flight (entries/s);
- batched ingest: ``LogBatch`` of ``--batch-size`` entries while filling the store;
- query by object at each size in ``--sizes``: ``Query(object_id, limit=100)``, median/p99;
- the daemon's resident memory (VmRSS) at each size;

and the same rows written by a minimal script into a plain indexed SQLite table (same
durability: WAL, synchronous=FULL, one transaction per batch), so the ratio shows what the
service costs. Run ``python benchmarks/log_bench.py --sizes 10000,50000`` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from mvirt.log.store import DB_FILE, QueryFilter, newest_rows, row_to_entry
from mvirt.proto import log_pb2, log_pb2_grpc

OBJECTS = 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_entry(i: int, rng: random.Random) -> log_pb2.LogEntry:
    vm = rng.randrange(OBJECTS)
    return log_pb2.LogEntry(
        message=f"VM vm-{vm} changed state: operation {i} finished",
        level=log_pb2.AUDIT,
        component="vmm",
        related_object_ids=[f"vm-{vm}", f"disk-{rng.randrange(3 * OBJECTS)}"],
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def unary_ingest(target: str, count: int, concurrency: int) -> float:
    rng = random.Random(1)
    entries = [make_entry(i, rng) for i in range(count)]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        queue = iter(entries)

        async def worker() -> None:
            for entry in queue:
                await stub.Log(log_pb2.LogRequest(entry=entry))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start)


async def batched_ingest(target: str, start_i: int, count: int, batch: int, inflight: int) -> float:
    rng = random.Random(start_i)
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        batches = iter(range(start_i, start_i + count, batch))

        async def worker() -> None:
            for first in batches:
                n = min(batch, start_i + count - first)
                req = log_pb2.LogBatchRequest(
                    entries=[make_entry(first + j, rng) for j in range(n)]
                )
                await stub.LogBatch(req)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return count / (time.perf_counter() - began)


def query_latencies(target: str, queries: int, limit: int, paged: bool = False) -> list[float]:
    rng = random.Random(7)
    times = []
    with grpc.insecure_channel(target) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        list(stub.Query(log_pb2.QueryRequest(object_id="vm-0", limit=100)))  # warm up
        for _ in range(queries):
            req = log_pb2.QueryRequest(object_id=f"vm-{rng.randrange(OBJECTS)}", limit=limit)
            began = time.perf_counter()
            if paged:
                [e for page in stub.QueryPages(req) for e in page.entries]
            else:
                list(stub.Query(req))
            times.append((time.perf_counter() - began) * 1000)
    return times


def store_query_latencies(db_path: Path, queries: int, limit: int) -> list[float]:
    """The daemon's own query and row conversion, in this process without gRPC: shows how
    much of the service's query latency is storage and how much is the RPC stream."""
    rng = random.Random(7)
    times = []
    db = sqlite3.connect(db_path)
    try:
        for _ in range(queries):
            flt = QueryFilter(object_id=f"vm-{rng.randrange(OBJECTS)}")
            began = time.perf_counter()
            [row_to_entry(r) for r in newest_rows(db, flt, limit, 1 << 62)]
            times.append((time.perf_counter() - began) * 1000)
    finally:
        db.close()
    return times


class PlainSqlite:
    """The baseline: the same rows in an indexed SQLite table, no service around it."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            "CREATE TABLE entries (seq INTEGER PRIMARY KEY, id TEXT, ts INTEGER, level INTEGER,"
            " component TEXT, message TEXT);"
            "CREATE TABLE refs (object_id TEXT, ts INTEGER, seq INTEGER);"
            "CREATE INDEX refs_by_object ON refs (object_id, ts);"
        )

    def insert(self, start_i: int, count: int, batch: int) -> float:
        rng = random.Random(start_i)
        began = time.perf_counter()
        for first in range(start_i, start_i + count, batch):
            n = min(batch, start_i + count - first)
            entries = [make_entry(first + j, rng) for j in range(n)]
            self.db.execute("BEGIN")
            for k, e in enumerate(entries):
                ts = time.time_ns()
                cur = self.db.execute(
                    "INSERT INTO entries (id, ts, level, component, message) VALUES (?,?,?,?,?)",
                    (str(first + k), ts, e.level, e.component, e.message),
                )
                self.db.executemany(
                    "INSERT INTO refs VALUES (?,?,?)",
                    [(o, ts, cur.lastrowid) for o in e.related_object_ids],
                )
            self.db.execute("COMMIT")
        return count / (time.perf_counter() - began)

    def query_latencies(self, queries: int, limit: int) -> list[float]:
        rng = random.Random(7)
        times = []
        for _ in range(queries):
            began = time.perf_counter()
            self.db.execute(
                "SELECT e.* FROM refs r JOIN entries e ON e.seq = r.seq WHERE r.object_id = ? "
                "ORDER BY r.ts DESC LIMIT ?",
                (f"vm-{rng.randrange(OBJECTS)}", limit),
            ).fetchall()
            times.append((time.perf_counter() - began) * 1000)
        return times


def latency(times_ms: list[float]) -> str:
    return f"median {statistics.median(times_ms):.2f} ms, p99 {percentile(times_ms, 99):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="store sizes to measure at")
    parser.add_argument("--unary", type=int, default=20_000, help="unary Log calls to time")
    parser.add_argument("--concurrency", type=int, default=64, help="unary calls in flight")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--inflight", type=int, default=4, help="batches in flight")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--query-limit", type=int, default=100, help="Query.limit")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    rows: list[tuple[str, str, str, str]] = []

    def add(row: tuple[str, str, str, str]) -> None:
        rows.append(row)
        print(" | ".join(c for c in row if c), file=sys.stderr, flush=True)  # progress

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        target = f"127.0.0.1:{port}"
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mvirt.log",
                "--listen",
                target,
                "--data-dir",
                f"{tmp}/log",
                "--log-level",
                "warning",
            ],
        )
        try:
            deadline = time.monotonic() + 20
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                assert time.monotonic() < deadline, "mvirt-log did not start"
                time.sleep(0.05)
            unary = asyncio.run(unary_ingest(target, args.unary, args.concurrency))
            add(("ingest, unary Log", f"{unary:,.0f} entries/s", "", ">= 5,000"))
            baseline = PlainSqlite(Path(tmp) / "plain.sqlite3")
            stored = args.unary
            plain_stored = 0
            for size in sizes:
                rate = asyncio.run(
                    batched_ingest(target, stored, size - stored, args.batch_size, args.inflight)
                )
                stored = size
                plain_rate = baseline.insert(plain_stored, size - plain_stored, args.batch_size)
                plain_stored = size
                add(
                    (
                        f"ingest, LogBatch x{args.batch_size} (to {size:,})",
                        f"{rate:,.0f} entries/s",
                        f"{plain_rate:,.0f} entries/s ({plain_rate / rate:.1f}x)",
                        ">= 50,000",
                    )
                )
                lat = query_latencies(target, args.queries, args.query_limit)
                pages = query_latencies(target, args.queries, args.query_limit, paged=True)
                own = store_query_latencies(
                    Path(tmp) / "log" / DB_FILE, args.queries, args.query_limit
                )
                plain = baseline.query_latencies(args.queries, args.query_limit)
                add(
                    (
                        f"query by object, limit {args.query_limit}, at {size:,}",
                        latency(lat),
                        latency(plain),
                        "p99 <= 20 ms at 1M",
                    )
                )
                add((f"  same query with QueryPages, at {size:,}", latency(pages), "", ""))
                add((f"  same query in the store, no gRPC, at {size:,}", latency(own), "", ""))
                add(
                    (
                        f"daemon RSS at {size:,}",
                        f"{rss_mib(daemon.pid):.0f} MiB",
                        "",
                        "<= 150 MiB at 1M",
                    )
                )
        finally:
            daemon.terminate()
            daemon.wait(60)

    widths = [
        max(len(r[i]) for r in [*rows, ("what", "mvirt-log", "plain SQLite", "target")])
        for i in range(4)
    ]
    header = ("what", "mvirt-log", "plain SQLite", "target")
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
