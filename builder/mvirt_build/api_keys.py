"""The API's client CA and a client certificate, written by `genkey` next to the Secure Boot key.

`api-ca.crt` is baked into the image: a node's daemons admit over mutual TLS only clients
whose certificate it signed. `api-ca.key` stays with the user (it admits new clients);
`client.crt`/`client.key` are what `mvirt --tls keys/` presents. Files that exist are kept
(they may already be in images); a missing client certificate is issued again from the CA.
The node makes its own server key at first boot; nothing here is about the server side.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mvirt_build.errors import BuildError
from mvirt_build.keys import write_atomic

CA_CERT_NAME = "api-ca.crt"
CA_KEY_NAME = "api-ca.key"
CLIENT_CERT_NAME = "client.crt"
CLIENT_KEY_NAME = "client.key"


@dataclass(frozen=True)
class ApiKeyPair:
    """One key and certificate, and whether this run made them (False: kept)."""

    key: Path
    cert: Path
    created: bool


@dataclass(frozen=True)
class ApiKeys:
    """What `genkey` has for the API."""

    ca: ApiKeyPair
    client: ApiKeyPair


def generate_api_keys(out_dir: Path, *, days: int = 3650, force: bool = False) -> ApiKeys:
    """Makes the client CA and a client certificate in `out_dir` where they are missing
    (all of them with `force`); private keys are written with mode 0600."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ca_key_path, ca_cert_path = out_dir / CA_KEY_NAME, out_dir / CA_CERT_NAME
    client_key_path, client_cert_path = out_dir / CLIENT_KEY_NAME, out_dir / CLIENT_CERT_NAME
    ca_created = force or not _complete(ca_key_path, ca_cert_path)
    if ca_created:
        ca_key, ca_cert = _make_ca(days)
        _write_pair(ca_key_path, ca_key, ca_cert_path, ca_cert)
    else:
        ca_key, ca_cert = _load_pair(ca_key_path, ca_cert_path)
    client_created = ca_created or not _complete(client_key_path, client_cert_path)
    if client_created:
        key, cert = _make_client(ca_key, ca_cert, days)
        _write_pair(client_key_path, key, client_cert_path, cert)
    return ApiKeys(
        ApiKeyPair(ca_key_path, ca_cert_path, ca_created),
        ApiKeyPair(client_key_path, client_cert_path, client_created),
    )


def _complete(key: Path, cert: Path) -> bool:
    if key.exists() and cert.exists():
        return True
    if key.exists() or cert.exists():
        present, missing = (key, cert) if key.exists() else (cert, key)
        raise BuildError(
            f"{present} exists but {missing} does not",
            hint=f"restore {missing.name}, or pass --force to make new API keys (images with "
            "the old api-ca.crt then refuse the new client certificate)",
        )
    return False


def _load_pair(
    key_path: Path, cert_path: Path
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise BuildError(f"cannot read the API CA in {key_path.parent}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BuildError(f"{key_path} is not an EC key as genkey writes it")
    return key, cert


def _write_pair(
    key_path: Path, key: ec.EllipticCurvePrivateKey, cert_path: Path, cert: x509.Certificate
) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(key_path, key_pem, 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)


def _make_ca(days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mvirt API client CA")])
    not_before, not_after = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_client(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mvirt API client")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
