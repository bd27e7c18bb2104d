"""The audit client against a real mvirt-log: spooling while it is down, delivery in order."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from mvirt.daemon import log_limits as limits
from mvirt.daemon.audit import AuditLogger
from mvirt.proto import log_pb2, log_pb2_grpc
from tests.conftest import DaemonProcess, free_port

FAST_RETRY: dict[str, Any] = {"retry_initial": 0.05, "retry_max": 0.2}


def stored(daemon: DaemonProcess, **query: object) -> list[log_pb2.LogEntry]:
    with daemon.channel() as channel:
        stub = log_pb2_grpc.LogServiceStub(channel)
        return list(stub.Query(log_pb2.QueryRequest(**query), timeout=30))  # type: ignore[arg-type]


async def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_server_down_spools_then_delivers_everything_in_order(tmp_path: Path) -> None:
    port = free_port()
    daemon = DaemonProcess("mvirt.log", tmp_path / "log", port)

    async def scenario() -> list[str]:
        audit = AuditLogger("vmm", f"127.0.0.1:{port}", tmp_path / "vmm", **FAST_RETRY)
        (tmp_path / "vmm").mkdir()
        await audit.start()
        ids = [audit.log(log_pb2.AUDIT, f"down {i}", ["vm-1", f"disk-{i % 3}"]) for i in range(300)]
        await wait_for(lambda: audit.spooled == 300)
        await asyncio.to_thread(daemon.start)
        # Entries made while the spool drains queue behind it.
        ids += [audit.log(log_pb2.INFO, f"up {i}", ["vm-1"]) for i in range(100)]
        assert await audit.flush(30)
        await audit.close()
        return ids

    try:
        ids = asyncio.run(scenario())
        got = stored(daemon, object_id="vm-1")
        assert [e.id for e in got] == ids
        assert [e.message for e in got] == [f"down {i}" for i in range(300)] + [
            f"up {i}" for i in range(100)
        ]
        assert {e.component for e in got} == {"vmm"}
        assert len(stored(daemon, object_id="disk-2")) == 100
    finally:
        daemon.kill()


def test_spool_survives_a_restart_of_the_daemon_using_it(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "net"
    data.mkdir()

    async def before_restart() -> list[str]:
        audit = AuditLogger("net", f"127.0.0.1:{port}", data, **FAST_RETRY)
        await audit.start()
        ids = [audit.log(log_pb2.AUDIT, f"m{i}", ["net-1"]) for i in range(50)]
        await audit.close()  # log service still down: everything goes to the spool
        return ids

    async def after_restart() -> list[str]:
        audit = AuditLogger("net", f"127.0.0.1:{port}", data, **FAST_RETRY)
        await audit.start()
        assert audit.spooled == 50
        ids = [audit.log(log_pb2.AUDIT, "after", ["net-1"])]
        assert await audit.flush(30)
        await audit.close()
        return ids

    first = asyncio.run(before_restart())
    daemon = DaemonProcess("mvirt.log", tmp_path / "log", port).start()
    try:
        second = asyncio.run(after_restart())
        assert [e.id for e in stored(daemon, object_id="net-1")] == first + second
    finally:
        daemon.kill()


def test_log_service_going_away_midway_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "zfs"
    data.mkdir()
    daemon = DaemonProcess("mvirt.log", tmp_path / "log", port).start()

    async def scenario() -> list[str]:
        audit = AuditLogger("zfs", f"127.0.0.1:{port}", data, **FAST_RETRY)
        await audit.start()
        ids = [audit.log(log_pb2.AUDIT, f"a{i}", ["vol-1"]) for i in range(100)]
        assert await audit.flush(20)
        await asyncio.to_thread(daemon.kill)
        ids += [audit.log(log_pb2.AUDIT, f"b{i}", ["vol-1"]) for i in range(100)]
        await wait_for(lambda: audit.spooled == 100)
        await asyncio.to_thread(daemon.start)
        ids += [audit.log(log_pb2.AUDIT, f"c{i}", ["vol-1"]) for i in range(100)]
        assert await audit.flush(30)
        await audit.close()
        return ids

    try:
        ids = asyncio.run(scenario())
        assert [e.id for e in stored(daemon, object_id="vol-1")] == ids
    finally:
        daemon.kill()


def test_every_entry_is_in_the_local_log_and_bad_input_never_raises(tmp_path: Path, caplog) -> None:
    async def scenario() -> str:
        audit = AuditLogger("vmm", None, tmp_path)
        await audit.start()
        entry_id = audit.log(
            log_pb2.AUDIT, "x" * (limits.MAX_MESSAGE_BYTES + 10), ["vm-1", "not valid!"]
        )
        await audit.close()
        return entry_id

    with caplog.at_level(logging.INFO):
        entry_id = asyncio.run(scenario())
    (record,) = [r for r in caplog.records if getattr(r, "audit_id", None) == entry_id]
    assert record.related_ids == ["vm-1"]
    assert record.getMessage().endswith("[truncated]")
    assert len(record.getMessage().encode()) <= limits.MAX_MESSAGE_BYTES
    assert any("invalid related id" in r.getMessage() for r in caplog.records)


def test_daemon_audit_entries_reach_mvirt_log(tmp_path: Path) -> None:
    log = DaemonProcess("mvirt.log", tmp_path / "log").start()
    sample = DaemonProcess(
        str(Path(__file__).with_name("sample_daemon.py")),
        tmp_path / "sample",
        None,
        "--log-endpoint",
        log.endpoint,
    ).start()
    try:
        with sample.channel() as channel:
            entry_id = channel.unary_unary("/sample.Sample/Audit")(b"sample did it", timeout=5)
        deadline = time.monotonic() + 20
        while not (got := stored(log, object_id="sample-1")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(e.id, e.message, e.component, e.level) for e in got] == [
            (entry_id.decode(), "sample did it", "sample", log_pb2.AUDIT)
        ]
        assert sample.terminate() == 0
    finally:
        for d in (sample, log):
            if d.proc and d.proc.poll() is None:
                d.kill()
