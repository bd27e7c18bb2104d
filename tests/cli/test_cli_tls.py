"""``mvirt --tls DIR``: every command reaches real daemons over mutual TLS; the node is pinned
by fingerprint or trusted on first use; every failure is one line without a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mvirt.cli.main import cli
from tests.conftest import free_port
from tests.daemon.certs import Authority, make_authority
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture used below)

FINGERPRINT = re.compile(r"API certificate fingerprint (SHA256:[0-9a-f]{64})")


@pytest.fixture
def authority(tmp_path) -> Authority:
    return make_authority(tmp_path / "ca")


@pytest.fixture
def keys(tmp_path, authority) -> Path:
    """What a user's keys/ holds for the CLI: client.crt and client.key."""
    return authority.issue_client(tmp_path / "keys")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty config home: known_hosts starts empty."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config / "mvirt" / "known_hosts"


def tls_args(authority: Authority, tls_dir: Path) -> tuple[str, ...]:
    return (
        "--tls-listen", f"127.0.0.1:{free_port()}",
        "--tls-client-ca", str(authority.cert_path), "--tls-dir", str(tls_dir),
    )  # fmt: skip


class Node:
    """mvirt-vmm (on the fake cloud-hypervisor) and mvirt-log sharing one TLS identity."""

    def __init__(self, vmm, log, vmm_args: tuple[str, ...], log_args: tuple[str, ...]) -> None:
        self.vmm, self.log = vmm, log
        self.vmm_tls = vmm_args[1]
        self.log_tls = log_args[1]

    @property
    def fingerprint(self) -> str:
        match = FINGERPRINT.search(self.vmm.daemon.stderr())
        assert match, self.vmm.daemon.stderr()
        return match[1]


@pytest.fixture
def node(start_vmm, start_log_daemon, authority, tmp_path) -> Node:  # noqa: F811
    vmm_args = tls_args(authority, tmp_path / "node-tls")
    log_args = tls_args(authority, tmp_path / "node-tls")
    log = start_log_daemon(*log_args)
    vmm = start_vmm(
        "--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH),
        "--log-endpoint", log.endpoint, *vmm_args,
    )  # fmt: skip
    return Node(vmm, log, vmm_args, log_args)


def mvirt(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def test_every_command_family_works_over_tls_and_trusts_on_first_use(node, keys, home, tmp_path):
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    created = mvirt(
        "--server", node.vmm_tls, "--tls", str(keys),
        "create", "web", "--kernel", str(tmp_path / "vmlinuz"), "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    vm = json.loads(created.stdout)
    assert f"trusting {node.vmm_tls} on first use" in created.stderr
    assert node.fingerprint in created.stderr
    assert home.read_text() == f"{node.vmm_tls} {node.fingerprint}\n"

    listed = mvirt("--server", node.vmm_tls, "--tls", str(keys), "list")
    assert listed.exit_code == 0 and vm["id"] in listed.stdout
    assert listed.stderr == ""  # known now: nothing to say
    system = mvirt("--tls", str(keys), "system", "--server", node.vmm_tls)
    assert system.exit_code == 0 and "allocated to VMs" in system.stdout

    # As the README writes it: options after the command, the log on its own endpoint.
    logs = mvirt("logs", "--log-server", node.log_tls, "--tls", str(keys), "-o", "json")
    assert logs.exit_code == 0, logs.output
    entries = [json.loads(line) for line in logs.stdout.splitlines()]
    assert any(vm["id"] in e["related_object_ids"] for e in entries)
    assert home.read_text().splitlines() == [
        f"{node.vmm_tls} {node.fingerprint}",
        f"{node.log_tls} {node.fingerprint}",  # one node, one fingerprint
    ]


def test_environment_gives_the_tls_dir_and_the_pin(node, keys, home):
    env = {"MVIRT_TLS_DIR": str(keys), "MVIRT_TLS_FINGERPRINT": node.fingerprint}
    result = mvirt("list", "--server", node.vmm_tls, env=env)
    assert result.exit_code == 0, result.output
    assert not home.exists()  # pinned explicitly: nothing is recorded


def test_a_changed_fingerprint_is_refused_naming_the_file(node, keys, home):
    home.parent.mkdir(parents=True)
    home.write_text(f"# mine\n{node.vmm_tls} SHA256:{'ab' * 32}\n")
    result = mvirt("--tls", str(keys), "list", "--server", node.vmm_tls)
    assert result.exit_code == 6
    assert "CHANGED" in result.output and f"{home} line 2" in result.output
    assert node.fingerprint in result.output and "Traceback" not in result.output
    assert home.read_text().count("\n") == 2  # untouched


def test_wrong_pinned_fingerprint_is_refused(node, keys, home):
    wrong = "SHA256:" + "00" * 32
    result = mvirt("--tls", str(keys), "--tls-fingerprint", wrong, "list", "--server", node.vmm_tls)
    assert result.exit_code == 6
    assert f"presents certificate {node.fingerprint}, not {wrong}" in result.output
    right = mvirt(
        "--tls", str(keys), "--tls-fingerprint", node.fingerprint.upper().replace("SHA256:", ""),
        "list", "--server", node.vmm_tls,
    )  # fmt: skip
    assert right.exit_code == 0, right.output


def test_certificate_from_another_ca_is_refused_by_the_server(node, home, tmp_path):
    stranger = make_authority(tmp_path / "other", "other CA").issue_client(tmp_path / "x")
    result = mvirt("--tls", str(stranger), "list", "--server", node.vmm_tls)
    assert result.exit_code == 6
    assert "does not accept our client certificate" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing-dir", "does not exist"),
        ("missing-key", "client.key"),
        ("bad-cert", "is not a PEM certificate"),
        ("bad-pin", "64 hex digits"),
    ],
)
def test_bad_tls_input_is_one_line(node, keys, home, setup, message, tmp_path):
    tls_dir = keys
    extra: list[str] = []
    if setup == "missing-dir":
        tls_dir = tmp_path / "nope"
    elif setup == "missing-key":
        (keys / "client.key").unlink()
    elif setup == "bad-cert":
        (keys / "client.crt").write_text("junk")
    else:
        extra = ["--tls-fingerprint", "SHA256:abc"]
    result = mvirt("--tls", str(tls_dir), *extra, "list", "--server", node.vmm_tls)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_fingerprint_without_tls_is_refused_not_ignored(node, home):
    pin = node.fingerprint
    result = mvirt("--tls-fingerprint", pin, "list", "--server", node.vmm.daemon.endpoint)
    assert result.exit_code == 2 and "give --tls DIR too" in result.output


def test_tls_to_a_plaintext_or_closed_port_is_one_line(node, keys, home):
    plaintext = mvirt("--tls", str(keys), "list", "--server", node.vmm.daemon.endpoint)
    assert plaintext.exit_code == 5
    assert "no TLS handshake" in plaintext.output and "Traceback" not in plaintext.output
    closed = mvirt("--tls", str(keys), "list", "--server", f"127.0.0.1:{free_port()}")
    assert closed.exit_code == 5
    assert "UNAVAILABLE: cannot reach" in closed.output and "Traceback" not in closed.output


def test_trust_on_first_use_then_a_reinstalled_node_is_detected(
    start_log_daemon, authority, keys, home, tmp_path
):
    target = f"127.0.0.1:{free_port()}"

    def node(tls_dir: Path):
        return start_log_daemon(
            "--tls-listen", target, "--tls-client-ca", str(authority.cert_path),
            "--tls-dir", str(tls_dir), data_dir=tmp_path / "log-data",
        )  # fmt: skip

    first = node(tmp_path / "identity-1")
    recorded = mvirt("logs", "--log-server", target, "--tls", str(keys))
    assert recorded.exit_code == 0, recorded.output
    assert "on first use" in recorded.stderr
    assert first.terminate() == 0
    node(tmp_path / "identity-2")  # same address, new server key: as after a reinstall
    changed = mvirt("logs", "--log-server", target, "--tls", str(keys))
    assert changed.exit_code == 6
    assert "CHANGED" in changed.output and f"{home} line 1" in changed.output
    assert home.read_text().count("\n") == 1
