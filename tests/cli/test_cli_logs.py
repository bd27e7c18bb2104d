"""``mvirt logs`` against a real mvirt-log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from mvirt.cli.logs import parse_since
from mvirt.cli.main import cli
from mvirt.proto import log_pb2, log_pb2_grpc
from tests.conftest import free_port


@pytest.fixture
def seeded(log_daemon):
    now = time.time_ns()
    entries = [
        log_pb2.LogEntry(
            message="VM created",
            component="vmm",
            level=log_pb2.AUDIT,
            related_object_ids=["vm-1", "disk-1"],
            timestamp_ns=now - 3600 * 10**9,
        ),
        log_pb2.LogEntry(
            message="volume resized",
            component="zfs",
            level=log_pb2.INFO,
            related_object_ids=["disk-1"],
            timestamp_ns=now - 60 * 10**9,
        ),
        log_pb2.LogEntry(
            message="NIC [bold]added[/bold]",
            component="net",
            level=log_pb2.WARN,
            related_object_ids=["vm-1", "nic-1"],
            timestamp_ns=now,
        ),
    ]
    with log_daemon.channel() as channel:
        log_pb2_grpc.LogServiceStub(channel).LogBatch(log_pb2.LogBatchRequest(entries=entries))
    return log_daemon


def mvirt(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_json_output_has_every_field_oldest_first(seeded) -> None:
    result = mvirt("logs", "--log-server", seeded.endpoint, "-o", "json")
    assert result.exit_code == 0, result.output
    rows = json_lines(result.output)
    assert [r["message"] for r in rows] == [
        "VM created",
        "volume resized",
        "NIC [bold]added[/bold]",
    ]
    assert rows[0]["level"] == "AUDIT"
    assert rows[0]["component"] == "vmm"
    assert rows[0]["related_object_ids"] == ["vm-1", "disk-1"]
    assert len(rows[0]["id"]) == 26
    assert rows[0]["time"].endswith("Z")


def test_filters_object_component_since_and_limit(seeded) -> None:
    server = ("--log-server", f"http://{seeded.endpoint}")
    by_object = json_lines(mvirt("logs", *server, "--object", "vm-1", "-o", "json").output)
    assert [r["message"] for r in by_object] == ["VM created", "NIC [bold]added[/bold]"]
    by_component = json_lines(mvirt("logs", *server, "--component", "zfs", "-o", "json").output)
    assert [r["message"] for r in by_component] == ["volume resized"]
    recent = json_lines(mvirt("logs", *server, "--since", "10m", "-o", "json").output)
    assert [r["message"] for r in recent] == ["volume resized", "NIC [bold]added[/bold]"]
    newest = json_lines(mvirt("logs", *server, "-n", "1", "-o", "json").output)
    assert [r["message"] for r in newest] == ["NIC [bold]added[/bold]"]


def test_table_output_shows_entries_literally(seeded) -> None:
    result = mvirt("logs", "--log-server", seeded.endpoint)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["TIME", "LEVEL", "COMPONENT", "MESSAGE", "OBJECTS"]
    assert "VM created" in result.output and "vm-1, disk-1" in result.output
    assert "[bold]added[/bold]" in result.output  # markup in messages is not interpreted


def test_server_from_environment(seeded) -> None:
    result = CliRunner(env={"MVIRT_LOG_SERVER": seeded.endpoint}).invoke(
        cli, ["logs", "-o", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert len(json_lines(result.output)) == 3


def test_unreachable_server_is_a_one_line_error() -> None:
    port = free_port()
    result = mvirt("logs", "--log-server", f"127.0.0.1:{port}")
    assert result.exit_code == 5
    assert result.output.strip().splitlines() == [
        f"Error: UNAVAILABLE: cannot reach 127.0.0.1:{port}; "
        "is mvirt-log running? (check the address with --log-server)"
    ]


def test_invalid_input_gives_clean_errors(log_daemon) -> None:
    bad_object = mvirt("logs", "--log-server", log_daemon.endpoint, "--object", "no spaces")
    assert bad_object.exit_code == 1
    assert "INVALID_ARGUMENT: object_id 'no spaces' is not a valid object id" in bad_object.output
    bad_since = mvirt("logs", "--log-server", log_daemon.endpoint, "--since", "yesterday")
    assert bad_since.exit_code == 2
    assert "neither a duration" in bad_since.output
    bad_server = mvirt("logs", "--log-server", "nowhere")
    assert bad_server.exit_code == 2
    assert "expected host:port" in bad_server.output
    for result in (bad_object, bad_since, bad_server):
        assert "Traceback" not in result.output


def test_since_accepts_durations_and_iso_times() -> None:
    now = 1_800_000_000 * 10**9
    assert parse_since("90s", now) == now - 90 * 10**9
    assert parse_since("2h", now) == now - 7200 * 10**9
    assert parse_since("2027-01-15T08:00:00Z", now) == 1_800_000_000 * 10**9
    assert parse_since("2027-01-15T09:00:00+01:00", now) == 1_800_000_000 * 10**9


@pytest.mark.slow
def test_follow_prints_new_entries_as_they_arrive(log_daemon) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mvirt.cli",
            "logs",
            "--follow",
            "-o",
            "json",
            "--log-server",
            log_daemon.endpoint,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        time.sleep(1.0)  # let the follow stream open before writing
        with log_daemon.channel() as channel:
            stub = log_pb2_grpc.LogServiceStub(channel)
            for i in range(2):
                stub.Log(
                    log_pb2.LogRequest(entry=log_pb2.LogEntry(message=f"live {i}", component="vmm"))
                )
        assert proc.stdout is not None
        got = [json.loads(proc.stdout.readline())["message"] for _ in range(2)]
        assert got == ["live 0", "live 1"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
