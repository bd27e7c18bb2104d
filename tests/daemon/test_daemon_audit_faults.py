"""The audit client under faults, against a real mvirt-log: nothing acknowledged to the caller
is ever lost, whatever the server, the disk or the spool file does."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvirt.daemon.audit import SPOOL_FILE, AuditLogger
from mvirt.daemon.spool import AuditSpool
from mvirt.daemon.ulid import new_ulid
from mvirt.proto import log_pb2
from tests.conftest import DaemonProcess, free_port
from tests.daemon.test_daemon_audit import FAST_RETRY, stored, wait_for


def test_batches_larger_than_a_request_may_be_are_delivered(tmp_path: Path) -> None:
    daemon = DaemonProcess("mvirt.log", tmp_path / "log").start()
    data = tmp_path / "vmm"
    data.mkdir()

    async def scenario() -> tuple[list[str], bool]:
        audit = AuditLogger("vmm", daemon.endpoint, data, **FAST_RETRY)
        await audit.start()
        # 500 entries of 15 KB: 7.5 MB, far more than one request may carry.
        ids = [audit.log(log_pb2.AUDIT, f"{i:04} " + "x" * 15_000, ["vm-big"]) for i in range(500)]
        flushed = await audit.flush(90)
        await audit.close()
        return ids, flushed

    try:
        ids, flushed = asyncio.run(scenario())
        assert flushed
        assert [e.id for e in stored(daemon, object_id="vm-big")] == ids
    finally:
        daemon.kill()


def test_flush_waits_for_the_batch_in_flight(tmp_path: Path) -> None:
    daemon = DaemonProcess("mvirt.log", tmp_path / "log").start()
    data = tmp_path / "vmm"
    data.mkdir()

    async def scenario() -> list[tuple[int, int]]:
        audit = AuditLogger("vmm", daemon.endpoint, data, **FAST_RETRY)
        await audit.start()
        seen = []
        for round_ in range(3):
            for i in range(300):
                audit.log(log_pb2.AUDIT, f"{round_}-{i} " + "y" * 8000, [f"vm-r{round_}"])
            assert await audit.flush(60)
            # flush() said everything is acknowledged: so it is stored, right now.
            got = await asyncio.to_thread(stored, daemon, object_id=f"vm-r{round_}")
            seen.append((round_, len(got)))
        await audit.close()
        return seen

    try:
        assert asyncio.run(scenario()) == [(0, 300), (1, 300), (2, 300)]
    finally:
        daemon.kill()


def test_text_that_is_not_utf8_never_raises_and_is_delivered(tmp_path: Path) -> None:
    daemon = DaemonProcess("mvirt.log", tmp_path / "log").start()
    data = tmp_path / "vmm"
    data.mkdir()
    undecodable = os.fsdecode(b"disk-\xff.img")  # how Python hands out a non-UTF-8 file name

    async def scenario() -> str:
        audit = AuditLogger("vmm", daemon.endpoint, data, **FAST_RETRY)
        await audit.start()
        entry_id = audit.log(
            log_pb2.AUDIT, f"attached {undecodable}", ["vm-u", undecodable], component=undecodable
        )
        assert await audit.flush(30)
        await audit.close()
        return entry_id

    try:
        entry_id = asyncio.run(scenario())
        (got,) = stored(daemon, object_id="vm-u")
        assert got.id == entry_id
        assert got.message == "attached disk-\\udcff.img"
        assert list(got.related_object_ids) == ["vm-u"]
        assert got.component == "vmm"
    finally:
        daemon.kill()


def test_corrupt_spool_file_is_moved_aside_and_a_fresh_one_used(tmp_path: Path, caplog) -> None:
    daemon = DaemonProcess("mvirt.log", tmp_path / "log").start()
    data = tmp_path / "net"
    data.mkdir()
    garbage = b"this is not an SQLite database\n" * 200
    (data / SPOOL_FILE).write_bytes(garbage)

    async def scenario() -> list[str]:
        audit = AuditLogger("net", daemon.endpoint, data, **FAST_RETRY)
        await audit.start()
        ids = [audit.log(log_pb2.AUDIT, f"n{i}", ["net-c"]) for i in range(20)]
        assert await audit.flush(30)
        await audit.close()
        return ids

    try:
        with caplog.at_level(logging.INFO):
            ids = asyncio.run(scenario())
        assert [e.id for e in stored(daemon, object_id="net-c")] == ids
        (aside,) = data.glob(f"{SPOOL_FILE}.corrupt-*")
        assert aside.read_bytes() == garbage
        (record,) = [r for r in caplog.records if "moved it aside" in r.getMessage()]
        assert record.moved_to == str(aside)
    finally:
        daemon.kill()


def test_undecodable_row_and_rejected_entry_are_quarantined_alone(tmp_path: Path) -> None:
    data = tmp_path / "zfs"
    data.mkdir()

    def good(i: int) -> log_pb2.LogEntry:
        return log_pb2.LogEntry(
            id=new_ulid(), timestamp_ns=1000 + i, message=f"g{i}", related_object_ids=["vol-q"]
        )

    rejected = log_pb2.LogEntry(
        id=new_ulid(), timestamp_ns=1150, message="bad", related_object_ids=["vol-q", "no spaces"]
    )
    # A spool left by an earlier run: good entries around a row that does not decode and an
    # entry mvirt-log refuses.
    spool = AuditSpool(data / SPOOL_FILE, 1000)
    spool.append([good(i) for i in range(100)])
    spool._db.execute("INSERT INTO spool (entry) VALUES (?)", (b"\xff\xff\xff",))
    spool.append([rejected, *[good(i) for i in range(100, 200)]])
    spool.close()
    expected = [f"g{i}" for i in range(200)]
    daemon = DaemonProcess("mvirt.log", tmp_path / "log").start()

    async def scenario() -> list[tuple[str | None, str]]:
        audit = AuditLogger("zfs", daemon.endpoint, data, **FAST_RETRY)
        await audit.start()
        assert await audit.flush(60)
        assert audit.spool is not None
        quarantined = [
            (q.entry.id if q.entry else None, q.reason) for q in audit.spool.quarantined()
        ]
        await audit.close()
        return quarantined

    try:
        quarantined = asyncio.run(scenario())
        assert [e.message for e in stored(daemon, object_id="vol-q")] == expected
        assert [q[0] for q in quarantined] == [None, rejected.id]
        assert "does not decode" in quarantined[0][1]
        assert "related_object_ids[1]" in quarantined[1][1]
    finally:
        daemon.kill()


def test_spool_full_keeps_the_rest_in_memory_and_delivers_all(tmp_path: Path, caplog) -> None:
    port = free_port()
    daemon = DaemonProcess("mvirt.log", tmp_path / "log", port)

    async def scenario() -> list[str]:
        audit = AuditLogger(
            "vmm", f"127.0.0.1:{port}", tmp_path, max_spool_entries=10, **FAST_RETRY
        )
        await audit.start()
        ids = [audit.log(log_pb2.AUDIT, f"e{i}", ["vm-full"]) for i in range(15)]
        await wait_for(lambda: audit.spooled == 10)
        assert audit.pending == 15
        await asyncio.to_thread(daemon.start)
        assert await audit.flush(30)
        await audit.close()
        return ids

    try:
        with caplog.at_level(logging.INFO):
            ids = asyncio.run(scenario())
        assert [e.id for e in stored(daemon, object_id="vm-full")] == ids
        assert any("spool full" in r.getMessage() for r in caplog.records)
    finally:
        if daemon.proc is not None:
            daemon.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: a disk that fills up (needs root, as the image tests do)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk_under_the_spool_loses_nothing(tmp_path: Path, small_disk: Path, caplog) -> None:
    port = free_port()
    daemon = DaemonProcess("mvirt.log", tmp_path / "log", port)

    async def scenario() -> list[str]:
        audit = AuditLogger("vmm", f"127.0.0.1:{port}", small_disk, **FAST_RETRY)
        await audit.start()
        # About 1 MB of entries while mvirt-log is down: more than the disk holds.
        ids = [audit.log(log_pb2.AUDIT, f"{i:04} " + "z" * 1000, ["vm-disk"]) for i in range(1000)]
        await wait_for(lambda: 0 < audit.spooled < 1000 and "disk is full" in caplog.text)
        assert audit.pending == 1000
        await asyncio.to_thread(daemon.start)
        assert await audit.flush(60)
        await audit.close()
        return ids

    try:
        with caplog.at_level(logging.INFO):
            ids = asyncio.run(scenario())
        assert [e.id for e in stored(daemon, object_id="vm-disk")] == ids
    finally:
        if daemon.proc is not None:
            daemon.kill()
