"""genkey's API keys: a client CA and a client certificate a real daemon admits."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mvirt.daemon import tls
from mvirt.proto import log_pb2, log_pb2_grpc
from mvirt_build.api_keys import generate_api_keys
from mvirt_build.errors import BuildError
from tests.conftest import free_port


def test_writes_a_ca_and_a_client_certificate_it_signed(tmp_path):
    keys = generate_api_keys(tmp_path / "keys")
    assert keys.ca.created and keys.client.created
    names = sorted(p.name for p in (tmp_path / "keys").iterdir())
    assert names == ["api-ca.crt", "api-ca.key", "client.crt", "client.key"]
    for key in (keys.ca.key, keys.client.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(keys.ca.cert.read_bytes())
    client = x509.load_pem_x509_certificate(keys.client.cert.read_bytes())
    client.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage


def test_existing_keys_are_kept_and_a_missing_client_is_issued_again(tmp_path):
    first = generate_api_keys(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    again = generate_api_keys(tmp_path)
    assert not again.ca.created and not again.client.created
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    first.client.cert.unlink()
    first.client.key.unlink()
    reissued = generate_api_keys(tmp_path)
    assert not reissued.ca.created and reissued.client.created
    assert first.ca.cert.read_bytes() == before["api-ca.crt"]
    ca = x509.load_pem_x509_certificate(first.ca.cert.read_bytes())
    x509.load_pem_x509_certificate(first.client.cert.read_bytes()).verify_directly_issued_by(ca)


def test_half_a_ca_is_an_error_not_a_silent_replacement(tmp_path):
    keys = generate_api_keys(tmp_path)
    keys.ca.key.unlink()
    with pytest.raises(BuildError, match=r"api-ca\.crt exists but .*api-ca\.key does not"):
        generate_api_keys(tmp_path)
    replaced = generate_api_keys(tmp_path, force=True)
    assert replaced.ca.created and replaced.client.created


def test_the_builder_does_not_import_the_daemons():
    code = (
        "import sys, mvirt_build.api_keys, mvirt_build.release_cli;"
        "print(sorted(m for m in sys.modules if m == 'mvirt' or m.startswith('mvirt.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_a_daemon_with_genkeys_ca_admits_genkeys_client(tmp_path, start_log_daemon):
    keys = generate_api_keys(tmp_path / "keys")
    target = f"127.0.0.1:{free_port()}"
    start_log_daemon(
        "--tls-listen", target, "--tls-client-ca", str(keys.ca.cert),
        "--tls-dir", str(tmp_path / "tls"),
    )  # fmt: skip
    identity = tls.load_client_identity(tmp_path / "keys")
    channel, _ = tls.connect_pinned(target, identity, None)
    with channel:
        reply = log_pb2_grpc.LogServiceStub(channel).GetVersion(
            log_pb2.GetVersionRequest(), timeout=10
        )
    assert reply.version
