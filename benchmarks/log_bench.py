"""mvirt-log benchmark: ingest rate, query-by-object latency and memory, next to plain SQLite.

Starts a real mvirt-log on a free loopback port with a temporary data dir and measures:

- unary ingest: ``Log`` calls, ``--concurrency`` in flight (entries/s);
- batched ingest: ``LogBatch`` of ``--batch-size`` entries while filling the store to each of
  ``--sizes``;
- the same rows written in the same run by a minimal script into plain SQLite with the
  daemon's own schema and indexes (``mvirt.log.store.SCHEMA``) and the same durability (WAL,
  ``synchronous=FULL``, one transaction per batch, the writer's page cache): the ratio is what
  the service costs;
- query by object at each size (``Query(object_id, limit=100)``; median/p99), on a quiet
  store and while another process keeps ingesting batches;
- the daemon's peak memory (VmHWM) and resident memory (VmRSS);

and at the end it checks that every entry the daemon acknowledged is stored. ``--quick`` runs
a small version (20,000 entries) for iterating on a busy machine. ``--profile FILE`` runs the
daemon under cProfile (its event loop thread) and prints the top functions at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from mvirt.daemon.ulid import UlidGenerator
from mvirt.log.store import DB_FILE, SCHEMA, WRITER_CACHE_KIB
from mvirt.proto import log_pb2, log_pb2_grpc

OBJECTS = 10_000
INGEST_TURN = 10_000
SEP = "\n"


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


def memory_mib(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS (now) of ``pid`` in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_entry(daemon_s: float, client_s: float, entries: int) -> str:
    """CPU microseconds per entry of the daemon and of this (client) process."""
    return (
        f"CPU/entry: daemon {daemon_s / entries * 1e6:.0f} us, "
        f"client {client_s / entries * 1e6:.0f} us"
    )


def cpu_now(pid: int) -> tuple[float, float]:
    return cpu_seconds(pid), cpu_seconds(os.getpid())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def unary_ingest(target: str, count: int, concurrency: int) -> tuple[float, list[str]]:
    rng = random.Random(1)
    entries = [make_entry(i, rng) for i in range(count)]
    acked: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        queue = iter(entries)

        async def worker() -> None:
            for entry in queue:
                acked.append((await stub.Log(log_pb2.LogRequest(entry=entry))).id)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - start), acked


async def batched_ingest(
    target: str, start_i: int, count: int, batch: int, inflight: int
) -> tuple[float, list[str]]:
    rng = random.Random(start_i)
    acked: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        batches = iter(range(start_i, start_i + count, batch))

        async def worker() -> None:
            for first in batches:
                n = min(batch, start_i + count - first)
                req = log_pb2.LogBatchRequest(
                    entries=[make_entry(first + j, rng) for j in range(n)]
                )
                acked.extend((await stub.LogBatch(req)).ids)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        return count / (time.perf_counter() - began), acked


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


class PlainSqlite:
    """The baseline: the daemon's schema, indexes and durability, without the service."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        self.db.executescript(SCHEMA)
        self.ids = UlidGenerator()
        self.seq = 0

    def insert(self, start_i: int, count: int, batch: int) -> float:
        rng = random.Random(start_i)
        began = time.perf_counter()
        for first in range(start_i, start_i + count, batch):
            n = min(batch, start_i + count - first)
            entries = [make_entry(first + j, rng) for j in range(n)]
            now = time.time_ns()
            rows: list[tuple[int, str, int, int, str, str, str, int]] = []
            refs: list[tuple[str, int, int]] = []
            for e in entries:
                self.seq += 1
                related = list(dict.fromkeys(e.related_object_ids))
                rows.append(
                    (
                        self.seq,
                        self.ids.new(),
                        now,
                        e.level,
                        e.component,
                        e.message,
                        SEP.join(related),
                        now,
                    )
                )
                refs.extend((o, now, self.seq) for o in related)
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.db.executemany("INSERT INTO refs VALUES (?, ?, ?)", refs)
            self.db.execute("COMMIT")
        return count / (time.perf_counter() - began)

    def query_latencies(self, queries: int, limit: int) -> list[float]:
        rng = random.Random(7)
        times = []
        for _ in range(queries):
            began = time.perf_counter()
            rows = self.db.execute(
                "SELECT e.seq, e.id, e.ts, e.level, e.component, e.message, e.related "
                "FROM refs r JOIN entries e ON e.seq = r.seq WHERE r.object_id = ? "
                "ORDER BY r.ts DESC, r.seq DESC LIMIT ?",
                (f"vm-{rng.randrange(OBJECTS)}", limit),
            ).fetchall()
            rows.reverse()
            times.append((time.perf_counter() - began) * 1000)
        return times


def ingest_with_followers(
    target: str, start_i: int, count: int, followers: int, by_component: bool
) -> float:
    """Batched ingest rate while ``followers`` idle follow queries are open (each on an
    object, or on a component, that the new entries do not match)."""
    with grpc.insecure_channel(target) as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        streams = []
        for i in range(followers):
            request = log_pb2.QueryRequest(follow=True)
            if by_component:
                request.component = f"idle-{i}"
            else:
                request.object_id = f"idle-{i}"
            streams.append(stub.Query(request))
        try:
            # Every follow query is registered once the daemon has answered a later call.
            list(stub.Query(log_pb2.QueryRequest(limit=1)))
            rate, _ = asyncio.run(batched_ingest(target, start_i, count, 1000, 4))
        finally:
            for stream in streams:
                stream.cancel()
    return rate


def latency(times_ms: list[float]) -> str:
    return f"median {statistics.median(times_ms):.2f} ms, p99 {percentile(times_ms, 99):.2f} ms"


def background_ingest(target: str, start_i: int, count: int, ids_file: Path) -> subprocess.Popen:
    """Another process that ingests ``count`` entries in batches of 1,000 and writes the
    acknowledged ids to ``ids_file``."""
    return subprocess.Popen(
        [
            *(sys.executable, __file__, "--ingest-into", target),
            *("--ingest-start", str(start_i), "--ingest-count", str(count)),
            *("--ingest-ids", str(ids_file)),
        ],
    )


def ingest_main(args: argparse.Namespace) -> None:
    _, acked = asyncio.run(
        batched_ingest(args.ingest_into, args.ingest_start, args.ingest_count, 1000, 2)
    )
    Path(args.ingest_ids).write_text("\n".join(acked))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="store sizes to measure at")
    parser.add_argument("--quick", action="store_true", help="a small run: 20,000 entries")
    parser.add_argument("--unary", type=int, default=20_000, help="unary Log calls to time")
    parser.add_argument("--concurrency", type=int, default=64, help="unary calls in flight")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--inflight", type=int, default=4, help="batches in flight")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--query-limit", type=int, default=100, help="Query.limit")
    parser.add_argument("--profile", type=Path, help="run the daemon under cProfile into FILE")
    parser.add_argument(
        "--followers", type=int, default=200, help="idle follow queries for the fan-out check"
    )
    for name in ("--ingest-into", "--ingest-start", "--ingest-count", "--ingest-ids"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_start is not None:
        args.ingest_start, args.ingest_count = int(args.ingest_start), int(args.ingest_count)
    if args.quick:
        args.sizes, args.unary, args.queries = "20000", 5000, 200
    return args


def main() -> None:
    args = parse_args()
    if args.ingest_into:
        ingest_main(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, str, str, str]] = []

    def add(row: tuple[str, str, str, str]) -> None:
        rows.append(row)
        print(" | ".join(c for c in row if c), file=sys.stderr, flush=True)  # progress

    acked: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        target = f"127.0.0.1:{port}"
        profile = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
        daemon = subprocess.Popen(
            [
                *(sys.executable, *profile, "-m", "mvirt.log", "--listen", target),
                *("--data-dir", f"{tmp}/log", "--log-level", "warning"),
            ],
        )
        try:
            deadline = time.monotonic() + 20
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                assert time.monotonic() < deadline, "mvirt-log did not start"
                time.sleep(0.05)
            before = cpu_now(daemon.pid)
            unary, ids = asyncio.run(unary_ingest(target, args.unary, args.concurrency))
            acked.update(ids)
            add(("ingest, unary Log", f"{unary:,.0f} entries/s", "", ">= 10,000"))
            after = cpu_now(daemon.pid)
            cpu = cpu_per_entry(after[0] - before[0], after[1] - before[1], args.unary)
            add(("  " + cpu, "", "", ""))
            baseline = PlainSqlite(Path(tmp) / "plain.sqlite3")
            baseline.insert(10**9, args.unary, args.batch_size)  # same starting size
            stored = args.unary
            for size in sizes:
                # The service and the baseline take turns, a chunk each, so that both see
                # the same load on a shared machine.
                spent = plain_spent = 0.0
                cpu_total = [0.0, 0.0]
                for first in range(stored, size, INGEST_TURN):
                    n = min(INGEST_TURN, size - first)
                    turn = cpu_now(daemon.pid)
                    chunk_rate, ids = asyncio.run(
                        batched_ingest(target, first, n, args.batch_size, args.inflight)
                    )
                    after = cpu_now(daemon.pid)
                    cpu_total = [cpu_total[k] + after[k] - turn[k] for k in range(2)]
                    acked.update(ids)
                    spent += n / chunk_rate
                    plain_spent += n / baseline.insert(first, n, args.batch_size)
                rate, plain_rate = (size - stored) / spent, (size - stored) / plain_spent
                cpu = cpu_per_entry(cpu_total[0], cpu_total[1], size - stored)
                stored = size
                add(
                    (
                        f"ingest, LogBatch x{args.batch_size} (to {size:,})",
                        f"{rate:,.0f} entries/s ({rate / plain_rate:.2f}x plain)",
                        f"{plain_rate:,.0f} entries/s",
                        ">= 0.9x plain",
                    )
                )
                add(("  " + cpu, "", "", ""))
                quiet = query_latencies(target, args.queries, args.query_limit)
                plain = baseline.query_latencies(args.queries, args.query_limit)
                add(
                    (
                        f"query by object, limit {args.query_limit}, at {size:,}",
                        latency(quiet),
                        latency(plain),
                        "",
                    )
                )
                ids_file = Path(tmp) / f"ingest-{size}.ids"
                extra = max(args.queries * 20, 20_000)
                ingest = background_ingest(target, 2 * 10**9 + size, extra, ids_file)
                try:
                    busy = query_latencies(target, args.queries, args.query_limit)
                    paged = query_latencies(target, args.queries, args.query_limit, paged=True)
                finally:
                    ingest.wait()
                acked.update(ids_file.read_text().split())
                stored += extra
                add(
                    (
                        f"  the same while another process ingests (to {stored:,})",
                        latency(busy),
                        "",
                        "p99 <= 20 ms at 1M",
                    )
                )
                add(("  the same with QueryPages, while ingesting", latency(paged), "", ""))
                mem = memory_mib(daemon.pid)
                add(
                    (
                        f"daemon memory at {stored:,}",
                        f"peak {mem['VmHWM']:.0f} MiB, now {mem['VmRSS']:.0f} MiB",
                        "",
                        "",
                    )
                )
            fan_out = min(20_000, sizes[0])
            # Follow fan-out: ingest with no follower, then with idle followers of objects
            # and of components (filters the new entries do not match).
            quiet_rate, ids = asyncio.run(batched_ingest(target, 3 * 10**9, fan_out, 1000, 4))
            acked.update(ids)
            for by_component in (False, True):
                rate = ingest_with_followers(
                    target, 4 * 10**9 + by_component * 10**8, fan_out, args.followers, by_component
                )
                kind = "components" if by_component else "objects"
                add(
                    (
                        f"ingest with {args.followers} idle followers of {kind}",
                        f"{rate:,.0f} entries/s ({rate / quiet_rate:.2f}x without)",
                        "",
                        "",
                    )
                )
            mem = memory_mib(daemon.pid)
            add(("  daemon memory after the followers", f"peak {mem['VmHWM']:.0f} MiB", "", ""))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(120)
        db = sqlite3.connect(Path(tmp) / "log" / DB_FILE)
        try:
            in_store = {row[0] for row in db.execute("SELECT id FROM entries")}
        finally:
            db.close()
        missing = len(acked - in_store)
        add(("acknowledged entries stored", f"{len(acked) - missing:,} of {len(acked):,}", "", ""))

    widths = [
        max(len(r[i]) for r in [*rows, ("what", "mvirt-log", "plain SQLite", "target")])
        for i in range(4)
    ]
    header = ("what", "mvirt-log", "plain SQLite", "target")
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    if args.profile:
        print(f"\ndaemon profile (event loop thread), top 25 by own time: {args.profile}")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)
    if missing:
        sys.exit(f"{missing} acknowledged entries are not in the store")


if __name__ == "__main__":
    main()
