"""The shared bootstrap, run for real: flags, start-up errors, health, reflection, errors,
graceful shutdown."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import DaemonProcess, free_port

SAMPLE = str(Path(__file__).with_name("sample_daemon.py"))


@pytest.fixture
def sample(tmp_path):
    daemon = DaemonProcess(SAMPLE, tmp_path / "data", None, "--log-endpoint", "").start()
    yield daemon
    if daemon.proc and daemon.proc.poll() is None:
        daemon.kill()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mvirt.log", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_port_in_use_is_one_line_and_exit_1(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"mvirt-log: error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "stop the other process or pass --listen with a free host:port"
    ]


def test_second_daemon_on_the_same_port_is_refused(log_daemon, tmp_path) -> None:
    result = run_cli("--listen", log_daemon.endpoint, "--data-dir", str(tmp_path / "other"))
    assert result.returncode == 1
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["file", "readonly"])
def test_unusable_data_dir_is_one_line_and_exit_1(tmp_path, kind: str) -> None:
    if kind == "file":
        target = tmp_path / "a-file"
        target.write_text("")
        data_dir = target / "sub"
    else:
        data_dir = Path("/proc/mvirt-cannot-exist")
    result = run_cli("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data_dir))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"mvirt-log: error: data dir {data_dir} is not usable (")
    assert line.endswith("pass --data-dir with a writable directory")


def test_bad_listen_address_is_a_usage_error(tmp_path) -> None:
    result = run_cli("--listen", "nonsense", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "invalid endpoint 'nonsense'" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_reference_default_port() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "[::1]:50052" in result.stdout


def test_health_and_reflection(sample) -> None:
    with sample.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sample.Sample"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert {"sample.Sample", "grpc.health.v1.Health"} <= names


def test_log_daemon_reflection_lists_log_service(log_daemon) -> None:
    with log_daemon.channel() as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert "mvirt.log.LogService" in names


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("InvalidArgumentError", grpc.StatusCode.INVALID_ARGUMENT),
        ("NotFoundError", grpc.StatusCode.NOT_FOUND),
        ("AlreadyExistsError", grpc.StatusCode.ALREADY_EXISTS),
        ("FailedPreconditionError", grpc.StatusCode.FAILED_PRECONDITION),
        ("UnavailableError", grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_domain_errors_map_to_status_codes(sample, error: str, code: grpc.StatusCode) -> None:
    with sample.channel() as channel, pytest.raises(grpc.RpcError) as err:
        channel.unary_unary("/sample.Sample/Fail")(error.encode(), timeout=5)
    assert err.value.code() == code
    assert err.value.details() == f"sample {error}; do the other thing"


def test_unexpected_exception_is_internal_never_unknown(sample) -> None:
    with sample.channel() as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/sample.Sample/Fail")(b"RuntimeError", timeout=5)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "RuntimeError: boom" in err.value.details()
        # Still serving.
        assert channel.unary_unary("/sample.Sample/Sleep")(b"0", timeout=5) == b"done"
    assert "Traceback" in sample.stderr()  # the details are in the daemon's own log


def test_sigterm_finishes_in_flight_calls_then_closes_stores(sample) -> None:
    results: list[object] = []
    with sample.channel() as channel:
        sleep = channel.unary_unary("/sample.Sample/Sleep")

        def call() -> None:
            try:
                results.append(sleep(b"1.5", timeout=20))
            except grpc.RpcError as exc:
                results.append(exc.code())

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 20
        while not (sample.data_dir / "sleeping").exists():
            assert time.monotonic() < deadline, "the call never reached the daemon"
            time.sleep(0.02)
        assert sample.proc is not None
        sample.proc.terminate()
        thread.join(20)
        assert sample.proc.wait(20) == 0
    assert results == [b"done"]
    assert (sample.data_dir / "closed").read_text() == "yes"
    assert "Traceback" not in sample.stderr()


def test_daemon_log_is_structured_json(log_daemon) -> None:
    assert log_daemon.terminate() == 0
    records = [json.loads(line) for line in log_daemon.stderr().splitlines()]
    serving = next(r for r in records if r["msg"] == "serving")
    assert serving["listen"] == log_daemon.endpoint
    assert serving["level"] == "info" and serving["logger"] == "mvirt.log"
    assert [r["msg"] for r in records][-2:] == ["stopping", "stopped"]


def test_corrupt_state_is_one_line_and_exit_1(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "log.sqlite3").write_bytes(b"this is not a database" * 100)
    result = run_cli("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(data))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"mvirt-log: error: cannot open state in {data}: ")
    assert "file is not a database" in line


def test_bad_retention_flags_say_what_is_expected(tmp_path) -> None:
    for flag, value, expected in (
        ("--max-age", "3x", "invalid duration '3x'"),
        ("--max-size", "lots", "invalid size 'lots'"),
    ):
        result = run_cli(flag, value, "--data-dir", str(tmp_path))
        assert result.returncode == 2
        assert expected in result.stderr
