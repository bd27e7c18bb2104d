"""Secure Boot keys: `genkey` makes them, and the build finds the configured pair.

The key and certificate are configured like mkosi's `SecureBootKey=`/`SecureBootCertificate=`:
command-line options win, then the `[Validation]` section of the repository's `mkosi.conf`,
then the pair `genkey` writes (`keys/mvirt.key`, `keys/mvirt.crt`) when both exist. A pair that
is configured explicitly but missing is an error; no pair at all means an unsigned build.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mvirt_build.errors import BuildError

KEY_NAME = "mvirt.key"
CERT_NAME = "mvirt.crt"
CERT_DER_NAME = "mvirt.der"
DEFAULT_KEYS_DIR = "keys"


@dataclass(frozen=True)
class GeneratedKeys:
    """The files `genkey` wrote."""

    key: Path
    cert: Path
    cert_der: Path


@dataclass(frozen=True)
class SigningConfig:
    """The key pair to sign with (both None: unsigned build) and where the choice came from."""

    key: Path | None
    cert: Path | None
    origin: str

    @property
    def enabled(self) -> bool:
        """True when the build signs."""
        return self.key is not None and self.cert is not None


def generate_keys(
    out_dir: Path,
    *,
    common_name: str = "mvirt Secure Boot",
    bits: int = 2048,
    days: int = 3650,
    force: bool = False,
) -> GeneratedKeys:
    """Write an RSA key (PEM, mode 0600) and a self-signed code-signing certificate (PEM and
    DER) to `out_dir`; existing files are only replaced with `force`."""
    if bits < 2048:
        raise BuildError(f"RSA keys need at least 2048 bits, not {bits}")
    out = GeneratedKeys(out_dir / KEY_NAME, out_dir / CERT_NAME, out_dir / CERT_DER_NAME)
    existing = [p for p in (out.key, out.cert, out.cert_der) if p.exists()]
    if existing and not force:
        raise BuildError(
            f"{', '.join(map(str, existing))} already exist",
            hint="keep them (images signed with them stay bootable) or pass --force to replace",
        )
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(out.key, key_pem, 0o600)
    write_atomic(out.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    write_atomic(out.cert_der, cert.public_bytes(serialization.Encoding.DER), 0o644)
    return out


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Writes `path` aside with `mode` and renames it into place (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_mkosi_validation(conf: Path) -> dict[str, str]:
    """The `[Validation]` keys of an mkosi config file (later assignments win, as in mkosi)."""
    values: dict[str, str] = {}
    if not conf.is_file():
        return values
    section = ""
    for raw in conf.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section == "Validation" and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def resolve_signing(
    repo_root: Path, key: Path | None = None, cert: Path | None = None
) -> SigningConfig:
    """Decide which key pair the build signs with (see the module docstring for the order)."""
    origin = "command line"
    if key is None and cert is None:
        validation = read_mkosi_validation(repo_root / "mkosi.conf")
        k, c = validation.get("SecureBootKey"), validation.get("SecureBootCertificate")
        if k or c:
            origin = f"{repo_root / 'mkosi.conf'} [Validation]"
            key = repo_root / k if k else None
            cert = repo_root / c if c else None
        else:
            default_key = repo_root / DEFAULT_KEYS_DIR / KEY_NAME
            default_cert = repo_root / DEFAULT_KEYS_DIR / CERT_NAME
            if default_key.is_file() and default_cert.is_file():
                return SigningConfig(default_key, default_cert, "keys/ (from mvirt-build genkey)")
            return SigningConfig(None, None, "no key configured")
    if key is None or cert is None:
        raise BuildError(
            f"signing needs both a key and a certificate ({origin} gives only one)",
            hint="set both SecureBootKey= and SecureBootCertificate=",
        )
    for what, path in (("key", key), ("certificate", cert)):
        if not path.is_file():
            raise BuildError(
                f"Secure Boot {what} {path} (from {origin}) does not exist",
                hint="run `mvirt-build genkey` or fix the path",
            )
    return SigningConfig(key, cert, origin)
