"""Mutual TLS in the shared bootstrap, against real daemon processes: only clients with a
certificate from the configured CA get in, the node has one fingerprint, and nothing
plaintext listens off loopback."""

from __future__ import annotations

import re
import socket
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mvirt.daemon import tls
from mvirt.daemon.config import is_loopback
from mvirt.proto import log_pb2, log_pb2_grpc
from tests.conftest import DaemonProcess, free_port
from tests.daemon.certs import Authority, make_authority

SAMPLE = str(Path(__file__).with_name("sample_daemon.py"))
NO_SSL_LOG = str(Path(__file__).with_name("no_ssl_log_daemon.py"))
FINGERPRINT_LINE = re.compile(r"^mvirt-(\w+): API certificate fingerprint (SHA256:[0-9a-f]{64})$")


@pytest.fixture
def authority(tmp_path) -> Authority:
    return make_authority(tmp_path / "ca")


@pytest.fixture
def client_dir(tmp_path, authority) -> Path:
    return authority.issue_client(tmp_path / "client")


class TlsDaemon:
    """A daemon with a plaintext loopback listener and a mutual-TLS one."""

    def __init__(self, module: str, data_dir: Path, tls_dir: Path, ca: Path) -> None:
        self.tls_target = f"127.0.0.1:{free_port()}"
        self.tls_dir = tls_dir
        self.process = DaemonProcess(
            module, data_dir, None, "--log-endpoint", "", "--tls-listen", self.tls_target,
            "--tls-client-ca", str(ca), "--tls-dir", str(tls_dir),
        )  # fmt: skip

    def fingerprint(self) -> str:
        lines = [
            m for line in self.process.stderr().splitlines() if (m := FINGERPRINT_LINE.match(line))
        ]
        assert len(lines) == 1, self.process.stderr()
        return lines[0][2]


@pytest.fixture
def start_tls_daemon(tmp_path, authority):
    started: list[TlsDaemon] = []

    def start(
        module: str = "mvirt.log", tls_dir: Path | None = None, wait: bool = True
    ) -> TlsDaemon:
        daemon = TlsDaemon(
            module,
            tmp_path / f"data-{len(started)}",
            tls_dir or tmp_path / "tls",
            authority.cert_path,
        )
        started.append(daemon)
        daemon.process.start(wait)
        return daemon

    yield start
    for daemon in started:
        proc = daemon.process.proc
        if proc is not None and proc.poll() is None:
            daemon.process.kill()


def test_client_with_a_certificate_from_the_ca_calls_over_tls(start_tls_daemon, client_dir):
    daemon = start_tls_daemon()
    identity = tls.load_client_identity(client_dir)
    channel, seen = tls.connect_pinned(daemon.tls_target, identity, daemon.fingerprint())
    with channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = log_pb2_grpc.LogServiceStub(channel)
        assert stub.GetVersion(log_pb2.GetVersionRequest(), timeout=10).version
        entry = log_pb2.LogEntry(message="over TLS", component="test", related_object_ids=["o1"])
        stub.Log(log_pb2.LogRequest(entry=entry), timeout=10)
        found = list(stub.Query(log_pb2.QueryRequest(object_id="o1"), timeout=10))
    assert [e.message for e in found] == ["over TLS"]
    assert seen == daemon.fingerprint()
    # The plaintext loopback listener keeps working next to it.
    with daemon.process.channel() as plain:
        assert (
            log_pb2_grpc.LogServiceStub(plain)
            .GetVersion(log_pb2.GetVersionRequest(), timeout=10)
            .version
        )


def test_the_daemons_tls_does_not_need_pythons_ssl_module(start_tls_daemon, client_dir):
    daemon = start_tls_daemon(NO_SSL_LOG)
    channel, seen = tls.connect_pinned(
        daemon.tls_target, tls.load_client_identity(client_dir), None
    )
    with channel:
        reply = log_pb2_grpc.LogServiceStub(channel).GetVersion(
            log_pb2.GetVersionRequest(), timeout=10
        )
    assert reply.version and seen == daemon.fingerprint()


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_client_without_a_certificate_is_refused_at_the_tls_layer(start_tls_daemon):
    daemon = start_tls_daemon()
    server_cert = (daemon.tls_dir / tls.SERVER_CERT).read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=server_cert)
    options = [("grpc.ssl_target_name_override", tls.SERVER_NAME)]
    with grpc.secure_channel(daemon.tls_target, credentials, options=options) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE
    # Below gRPC: the server ends the connection instead of answering the HTTP/2 preface.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=server_cert.decode())
    context.set_alpn_protocols(["h2"])
    host, port = tls.split_target(daemon.tls_target)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=tls.SERVER_NAME) as conn,
    ):
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        try:
            answer = conn.recv(1)
        except (ssl.SSLError, ConnectionResetError):
            answer = b""
    assert answer == b""


def test_client_certificate_from_another_ca_is_refused(start_tls_daemon, tmp_path):
    daemon = start_tls_daemon()
    stranger = make_authority(tmp_path / "other-ca", "another CA").issue_client(tmp_path / "x")
    identity = tls.load_client_identity(stranger)
    with pytest.raises(
        tls.ServerRefusedError, match=r"refused our client certificate|does not accept"
    ):
        tls.fetch_server_certificate(daemon.tls_target, identity)
    server_der = tls.pem_to_der((daemon.tls_dir / tls.SERVER_CERT).read_bytes())
    with tls.pinned_channel(daemon.tls_target, identity, server_der) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE
    # A stranger cannot flood the daemon's log with gRPC's handshake messages.
    daemon.process.terminate()
    assert "Handshake failed" not in daemon.process.stderr()


def test_wrong_pinned_fingerprint_is_refused(start_tls_daemon, client_dir):
    daemon = start_tls_daemon()
    identity = tls.load_client_identity(client_dir)
    wrong = "SHA256:" + "00" * 32
    with pytest.raises(tls.FingerprintMismatchError, match=daemon.fingerprint()):
        tls.connect_pinned(daemon.tls_target, identity, wrong)


def test_pinned_channel_refuses_a_server_with_another_certificate(
    start_tls_daemon, client_dir, tmp_path
):
    """The pin is enforced by gRPC's own verification: a different server certificate fails
    the handshake even when it carries the same name."""
    first = start_tls_daemon()
    other = start_tls_daemon(tls_dir=tmp_path / "other-tls")
    assert first.fingerprint() != other.fingerprint()
    identity = tls.load_client_identity(client_dir)
    first_der = tls.pem_to_der((first.tls_dir / tls.SERVER_CERT).read_bytes())
    with tls.pinned_channel(other.tls_target, identity, first_der) as channel:
        assert _health(channel) == grpc.StatusCode.UNAVAILABLE


def test_server_key_is_0600_and_daemons_sharing_the_dir_serve_one_fingerprint(
    start_tls_daemon, client_dir, tmp_path
):
    shared = tmp_path / "node-tls"
    # Started together: both race to create the identity.
    log = start_tls_daemon("mvirt.log", tls_dir=shared, wait=False)
    sample = start_tls_daemon(SAMPLE, tls_dir=shared, wait=False)
    log.process.wait_serving()
    sample.process.wait_serving()
    assert log.fingerprint() == sample.fingerprint()
    identity = tls.load_client_identity(client_dir)
    for daemon in (log, sample):
        der = tls.fetch_server_certificate(daemon.tls_target, identity)
        assert tls.fingerprint(der) == log.fingerprint()
    assert stat.S_IMODE((shared / tls.SERVER_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    assert sorted(p.name for p in shared.iterdir()) == [".lock", "server.crt", "server.key"]
    # A restart keeps the identity.
    log.process.terminate()
    again = start_tls_daemon("mvirt.log", tls_dir=shared)
    assert again.fingerprint() == log.fingerprint()


def _run_log(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mvirt.log", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:{port}", "[::]:{port}", "example.org:{port}"])
def test_plaintext_listen_off_loopback_is_refused(tmp_path, listen):
    address = listen.format(port=free_port())
    result = _run_log("--listen", address, "--data-dir", str(tmp_path))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"mvirt-log: error: --listen {address} is not a loopback address")
    assert "--tls-listen" in line


@pytest.mark.parametrize(
    ("target", "loopback"),
    [
        ("127.0.0.1:1", True), ("127.0.0.2:1", True), ("[::1]:1", True), ("localhost:1", True),
        ("0.0.0.0:1", False), ("[::]:1", False), ("10.0.2.15:1", False), ("node:1", False),
    ],
)  # fmt: skip
def test_only_loopback_addresses_count_as_loopback(target, loopback):
    assert is_loopback(target) is loopback


def test_tls_listen_needs_a_client_ca(tmp_path):
    result = _run_log(
        "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path),
        "--tls-listen", f"127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--tls-listen needs --tls-client-ca" in line


@pytest.mark.parametrize("kind", ["missing", "garbage"])
def test_unusable_client_ca_is_one_line(tmp_path, kind):
    ca = tmp_path / "ca.crt"
    if kind == "garbage":
        ca.write_text("not a certificate\n")
    result = _run_log(
        "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
        "--tls-listen", f"127.0.0.1:{free_port()}", "--tls-client-ca", str(ca),
        "--tls-dir", str(tmp_path / "tls"), "--log-format", "text",
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(ca) in errors[0] and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("files", "message"),
    [(["server.key"], "server.key without its partner"),
     (["server.key", "server.crt"], "is damaged")],
)  # fmt: skip
def test_damaged_identity_is_one_line_and_kept(tmp_path, authority, files, message):
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    for name in files:
        (tls_dir / name).write_text("garbage")
    result = _run_log(
        "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"),
        "--tls-listen", f"127.0.0.1:{free_port()}", "--tls-client-ca", str(authority.cert_path),
        "--tls-dir", str(tls_dir),
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    assert all((tls_dir / name).read_text() == "garbage" for name in files)


def test_fingerprints_are_normalised():
    hexa = "AB" * 32
    colons = ":".join(["ab"] * 32)
    assert tls.normalize_fingerprint(hexa) == "SHA256:" + "ab" * 32
    assert tls.normalize_fingerprint("sha256:" + colons) == "SHA256:" + "ab" * 32
    with pytest.raises(ValueError, match="64 hex digits"):
        tls.normalize_fingerprint("SHA256:abcd")
