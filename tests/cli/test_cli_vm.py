"""``mvirt`` VM commands against a real mvirt-vmm (on the fake cloud-hypervisor, so no guest
needs to boot)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from mvirt.cli.console import EscapeFilter
from mvirt.cli.main import cli
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture used below)


@pytest.fixture
def vmm_server(start_vmm):  # noqa: F811
    return start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))


def mvirt(server, *args: str, cwd=None):
    runner = CliRunner(env={"MVIRT_SERVER": server.daemon.endpoint})
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_create_list_get_start_stop_delete_by_name(vmm_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "user-data").write_text("#cloud-config\n")
    created = mvirt(
        vmm_server, "create", "web", "--kernel", "vmlinuz", "--cmdline", "console=ttyS0",
        "--memory", "64", "--cpus", "1", "--user-data", "user-data", "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    vm = json.loads(created.output)
    assert vm["name"] == "web" and vm["state"] == "VM_STATE_STOPPED"
    assert vm["config"]["kernel"] == str(tmp_path / "vmlinuz")  # made absolute

    table = mvirt(vmm_server, "list").output
    assert "web" in table and "STOPPED" in table and "64 MiB" in table
    assert vm["id"] in table  # ids are never shortened
    listed = [
        json.loads(line) for line in mvirt(vmm_server, "list", "-o", "json").output.splitlines()
    ]
    assert [v["id"] for v in listed] == [vm["id"]]
    shown = mvirt(vmm_server, "get", "web").output
    assert vm["id"] in shown and "cloud-init" in shown

    started = mvirt(vmm_server, "start", "web")
    assert started.exit_code == 0 and "web: RUNNING" in started.output
    refused = mvirt(vmm_server, "delete", vm["id"])
    assert refused.exit_code == 1
    assert "FAILED_PRECONDITION" in refused.output and "Traceback" not in refused.output
    stopped = mvirt(vmm_server, "stop", "web", "--timeout", "10")
    assert "web: STOPPED (stopped by request (power button))" in stopped.output
    assert mvirt(vmm_server, "start", vm["id"]).exit_code == 0
    assert "web: STOPPED (killed by request)" in mvirt(vmm_server, "kill", "web").output
    assert mvirt(vmm_server, "delete", "web").exit_code == 0
    assert json.loads(mvirt(vmm_server, "list", "-o", "json").output or "null") is None


def test_errors_are_one_line_without_traceback(vmm_server, tmp_path):
    missing = mvirt(vmm_server, "get", "nope")
    assert missing.exit_code == 3 and "no VM is named 'nope'" in missing.output
    invalid = mvirt(vmm_server, "create", "--kernel", str(tmp_path / "absent"))
    assert invalid.exit_code == 1
    assert "INVALID_ARGUMENT" in invalid.output and "config.kernel" in invalid.output
    bad_nic = mvirt(vmm_server, "create", "--nic", "bridge=br0")
    assert bad_nic.exit_code == 2 and "--nic" in bad_nic.output
    runner = CliRunner(env={"MVIRT_SERVER": "127.0.0.1:1"})
    down = runner.invoke(cli, ["list"], catch_exceptions=False)
    assert down.exit_code == 5 and "UNAVAILABLE" in down.output
    assert "Traceback" not in down.output


def test_system_shows_the_host(vmm_server):
    table = mvirt(vmm_server, "system").output
    assert "cpus" in table and "memory" in table and "allocated to VMs" in table
    info = json.loads(mvirt(vmm_server, "system", "-o", "json").output)
    assert int(info["total_cpus"]) >= 1


def test_console_bridges_keys_and_leaves_on_ctrl_a_t(vmm_server, tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    assert mvirt(vmm_server, "create", "con", "--kernel", str(tmp_path / "vmlinuz")).exit_code == 0
    assert mvirt(vmm_server, "start", "con").exit_code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "mvirt.cli", "console", "con",
         "--server", vmm_server.daemon.endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    seen = bytearray()

    def read() -> None:
        while chunk := stdout.read1(1024):  # type: ignore[attr-defined]
            seen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stdin.write(b"hello\n")
        stdin.flush()
        deadline = time.monotonic() + 15
        while b"echo: hello" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"fake guest: booted" in seen and b"echo: hello" in seen, bytes(seen)
        stdin.write(b"\x01t")
        stdin.flush()
        assert proc.wait(15) == 0, stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        for stream in (stdin, stdout, stderr):
            stream.close()


def test_escape_filter():
    escape = EscapeFilter()
    assert escape.feed(b"ab\x01") == b"ab"
    assert escape.feed(b"\x01x") == b"\x01x"  # Ctrl+a Ctrl+a sends one Ctrl+a
    assert escape.feed(b"\x01") == b"" and not escape.leave
    assert escape.feed(b"tzz") == b"" and escape.leave
