"""The readiness probe pideisn runs for the daemons, against a real mvirt-log."""

import subprocess
import sys

from tests.conftest import free_port


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mvirt.daemon.health_probe", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serving_daemon_is_ready(log_daemon):
    result = probe(log_daemon.endpoint)
    assert (result.returncode, result.stderr) == (0, "")
    result = probe(log_daemon.endpoint, "--service", "mvirt.log.LogService")
    assert result.returncode == 0


def test_unknown_service_is_not_ready_and_says_why(log_daemon):
    result = probe(log_daemon.endpoint, "--service", "mvirt.Nothing")
    assert result.returncode == 1
    assert result.stderr.startswith(f"not ready: {log_daemon.endpoint}: NOT_FOUND")


def test_nothing_listening_is_not_ready_after_the_wait():
    address = f"127.0.0.1:{free_port()}"
    result = probe(address, "--wait", "1")
    assert result.returncode == 1
    assert result.stderr.startswith(f"not ready: {address}: DEADLINE_EXCEEDED")
