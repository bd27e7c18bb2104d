"""Mutual TLS for the mvirt APIs, shared by the daemons (server side) and clients.

A node has one API identity: a private key and a self-signed certificate in ``--tls-dir``,
made at the first start of whichever daemon comes first and served by all of them, so a node
has one fingerprint. Clients authenticate with a certificate signed by the API client CA
(``mvirt-build genkey`` makes both); the server demands it during the TLS handshake.

Clients do not trust the server by name or CA but by the SHA-256 fingerprint of its
certificate (pinned, or trusted on first use): the certificate fetched from the server
becomes the channel's only trust root, so gRPC itself refuses any other certificate.

The bootstrap imports this module only for ``--tls-listen``: a daemon without it never loads
``cryptography``. The server side needs only ``cryptography`` and gRPC (which carry their own
TLS libraries); Python's ``ssl`` module, and the OpenSSL it links, is loaded by the client
functions alone, so the node image need not carry it.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    import ssl

SERVER_NAME = "mvirt-node"
"""The DNS name in every node certificate; clients verify the pinned certificate against it
(a node is reached under many names and addresses: its identity is the fingerprint)."""
SERVER_KEY = "server.key"
SERVER_CERT = "server.crt"
CLIENT_KEY = "client.key"
CLIENT_CERT = "client.crt"
_LOCK = ".lock"
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
_FINGERPRINT = re.compile(r"^(?:sha256:)?([0-9a-f]{2}(?::?[0-9a-f]{2}){31})$", re.IGNORECASE)


class TlsError(Exception):
    """A TLS set-up problem; the message says what is wrong and what to do."""


class ServerRefusedError(TlsError):
    """The server ended the handshake because it does not accept our client certificate."""


def fingerprint(cert_der: bytes) -> str:
    """``SHA256:<hex>`` of a certificate in DER form (what the daemons print at start)."""
    return "SHA256:" + hashlib.sha256(cert_der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """The canonical ``SHA256:<lowercase hex>`` of a fingerprint as a user may write it
    (with or without the ``SHA256:`` prefix, colons or upper case); ValueError otherwise."""
    match = _FINGERPRINT.match(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a SHA-256 fingerprint; expected SHA256: and 64 hex digits"
        )
    return "SHA256:" + match[1].replace(":", "").lower()


def pem_to_der(pem: bytes) -> bytes:
    """The DER bytes of the certificate in ``pem``."""
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def der_to_pem(der: bytes) -> bytes:
    """The PEM form of the DER certificate ``der``."""
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class ServerIdentity:
    """The node's API key and certificate (PEM) and the certificate's fingerprint."""

    key_pem: bytes
    cert_pem: bytes
    fingerprint: str


def load_or_create_server_identity(tls_dir: Path) -> ServerIdentity:
    """The node's identity from ``tls_dir``; made there first if absent.

    Several daemons of a node share the directory and may start at the same moment: an
    exclusive lock on ``tls_dir/.lock`` makes exactly one of them create the pair, and files
    appear complete (written aside, then renamed) with the key at mode 0600.
    """
    try:
        tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(tls_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TlsError(
            f"TLS dir {tls_dir} is not usable ({exc.strerror or exc}); pass --tls-dir with a "
            "writable directory"
        ) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        return _load_or_create_locked(tls_dir)
    finally:
        os.close(lock_fd)


def _load_or_create_locked(tls_dir: Path) -> ServerIdentity:
    key_path, cert_path = tls_dir / SERVER_KEY, tls_dir / SERVER_CERT
    try:
        if key_path.exists() and cert_path.exists():
            key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
            try:
                key = serialization.load_pem_private_key(key_pem, None)
                cert = x509.load_pem_x509_certificate(cert_pem)
            except (ValueError, TypeError) as exc:
                raise TlsError(
                    f"{key_path} or {cert_path} is damaged ({exc}); remove both to make a new "
                    "identity (clients will see a new fingerprint)"
                ) from None
            if _public_der(cert.public_key()) != _public_der(key.public_key()):
                raise TlsError(
                    f"{cert_path} does not belong to {key_path}; remove both to make a new "
                    "identity (clients will see a new fingerprint)"
                )
        elif key_path.exists() or cert_path.exists():
            present = key_path if key_path.exists() else cert_path
            raise TlsError(
                f"{tls_dir} holds {present.name} without its partner; remove it to make a new "
                "identity (clients will see a new fingerprint)"
            )
        else:
            key_pem, cert_pem = _make_server_identity()
            _write_new(key_path, key_pem, 0o600)
            _write_new(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise TlsError(f"cannot use the TLS identity in {tls_dir}: {exc}") from None
    return ServerIdentity(key_pem, cert_pem, fingerprint(pem_to_der(cert_pem)))


def _public_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _make_server_identity() -> tuple[bytes, bytes]:
    """A new P-256 key and a self-signed certificate for :data:`SERVER_NAME`.

    Validity runs from 2000 to 9999 (RFC 5280's "no expiry"): clients pin the certificate
    itself, and a node whose clock is off at first boot must not make one that is not yet
    valid.
    """

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"mvirt node {socket.gethostname()}")]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Writes ``path`` aside and renames it into place, so no reader sees a partial file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_client_ca(path: Path) -> bytes:
    """The PEM certificate(s) client certificates must be signed by, checked to parse."""

    try:
        pem = path.read_bytes()
        certs = x509.load_pem_x509_certificates(pem)
    except OSError as exc:
        raise TlsError(
            f"cannot read the client CA {path} ({exc.strerror or exc}); pass --tls-client-ca "
            "with the API CA certificate (mvirt-build genkey writes keys/api-ca.crt)"
        ) from None
    except ValueError:
        raise TlsError(
            f"{path} holds no PEM certificate; pass --tls-client-ca with the API CA "
            "certificate (keys/api-ca.crt)"
        ) from None
    if not certs:
        raise TlsError(f"{path} holds no certificate")
    return pem


def server_credentials(identity: ServerIdentity, client_ca_pem: bytes) -> grpc.ServerCredentials:
    """Credentials for a listener that refuses any client without a certificate signed by
    the client CA (checked during the handshake, before any call)."""
    return grpc.ssl_server_credentials(
        [(identity.key_pem, identity.cert_pem)],
        root_certificates=client_ca_pem,
        require_client_auth=True,
    )


@dataclass(frozen=True)
class ClientIdentity:
    """A client's certificate and key (``client.crt``/``client.key`` of a TLS dir)."""

    cert_path: Path
    key_path: Path
    cert_pem: bytes
    key_pem: bytes


def load_client_identity(tls_dir: Path) -> ClientIdentity:
    """``tls_dir/client.crt`` and ``tls_dir/client.key``, checked to parse and to match."""

    if not tls_dir.is_dir():
        raise TlsError(
            f"TLS dir {tls_dir} does not exist; give the directory holding client.crt and "
            "client.key (mvirt-build genkey writes them to keys/)"
        )
    cert_path, key_path = tls_dir / CLIENT_CERT, tls_dir / CLIENT_KEY
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    except OSError as exc:
        raise TlsError(
            f"cannot read {exc.filename} ({exc.strerror}); the TLS dir needs client.crt and "
            "client.key (mvirt-build genkey writes them to keys/)"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise TlsError(f"{cert_path} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        raise TlsError(f"{key_path} is not an unencrypted PEM private key") from None
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise TlsError(f"{cert_path} does not belong to {key_path}")
    return ClientIdentity(cert_path, key_path, cert_pem, key_pem)


def split_target(target: str) -> tuple[str, int]:
    """``("::1", 50051)`` for ``[::1]:50051``."""
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def fetch_server_certificate(target: str, identity: ClientIdentity, timeout: float = 10.0) -> bytes:
    """The DER certificate the server at ``target`` presents, after a handshake with our
    client certificate; raises ServerRefusedError when the server does not accept it, and
    OSError when the server cannot be reached."""
    import ssl  # noqa: PLC0415 - clients only: the node's daemons do without Python's ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Trust is decided by the fingerprint of what comes back, not by a CA.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    context.load_cert_chain(identity.cert_path, identity.key_path)
    host, port = split_target(target)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=SERVER_NAME)
        except ssl.SSLError as exc:
            if "ALERT" in (exc.reason or "").upper():
                # TLS 1.2: the server judges our certificate inside the handshake.
                raise ServerRefusedError(_refusal(target, exc)) from None
            raise
        with tls:
            return _read_certificate(tls, target)


def _read_certificate(tls: ssl.SSLSocket, target: str) -> bytes:
    import ssl  # noqa: PLC0415 - see fetch_server_certificate

    der = tls.getpeercert(binary_form=True)
    if der is None:
        raise TlsError(f"{target} presented no certificate")
    # Under TLS 1.3 the server judges our certificate after the client's side of the
    # handshake is done: speak first and read its answer to learn whether it accepted us.
    try:
        tls.sendall(_HTTP2_PREFACE)
        answer = tls.recv(1)
    except (ssl.SSLError, ConnectionResetError) as exc:
        raise ServerRefusedError(_refusal(target, exc)) from None
    if not answer:
        raise ServerRefusedError(
            f"{target} closed the connection after the TLS handshake; it does not accept "
            "our client certificate (is it signed by the node's API CA?)"
        )
    return der


def _refusal(target: str, exc: OSError) -> str:
    reason = (getattr(exc, "reason", None) or str(exc)).lower().replace("_", " ")
    return (
        f"{target} refused our client certificate ({reason}); use the client certificate "
        "signed by the API CA baked into the node's image"
    )


def pinned_channel(target: str, identity: ClientIdentity, server_cert_der: bytes) -> grpc.Channel:
    """A channel to ``target`` that presents our certificate and accepts only the server
    certificate ``server_cert_der`` (the pinned one)."""
    root = der_to_pem(server_cert_der)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=identity.key_pem,
        certificate_chain=identity.cert_pem,
    )
    return grpc.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]
    )


class FingerprintMismatchError(TlsError):
    """The server's certificate is not the one pinned."""


def connect_pinned(
    target: str, identity: ClientIdentity, pin: str | None, timeout: float = 10.0
) -> tuple[grpc.Channel, str]:
    """A mutual-TLS channel to ``target`` and the server's fingerprint. With ``pin`` the
    server must present exactly that certificate (FingerprintMismatchError otherwise);
    without, the caller decides what to do with the fingerprint (trust on first use)."""
    der = fetch_server_certificate(target, identity, timeout)
    seen = fingerprint(der)
    if pin is not None and normalize_fingerprint(pin) != seen:
        raise FingerprintMismatchError(
            f"{target} presents certificate {seen}, not the pinned {normalize_fingerprint(pin)}"
        )
    return pinned_channel(target, identity, der), seen
