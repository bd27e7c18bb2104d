"""What `mvirt-build inspect` shows about a UKI (like `ukify inspect`): every section with its
size and SHA-256, the text sections, and who signed it, with the signer's validity."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC
from typing import Any

import pefile
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import pkcs7

from mvirt_build import uki

TEXT_SECTIONS = (".osrel", ".cmdline", ".uname", ".sbat")
_SECURITY = pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_SECURITY"]
_WIN_CERT = struct.Struct("<IHH")  # dwLength, wRevision, wCertificateType
_PKCS_SIGNED_DATA = 0x0002


def signers(data: bytes) -> list[x509.Certificate]:
    """The certificates in the image's Authenticode signatures (empty when unsigned)."""
    pe = pefile.PE(data=data, fast_load=True)
    try:
        directory = pe.OPTIONAL_HEADER.DATA_DIRECTORY[_SECURITY]
        offset, size = directory.VirtualAddress, directory.Size  # a file offset for this entry
    finally:
        pe.close()
    found: list[x509.Certificate] = []
    end = offset + size
    while size and offset + _WIN_CERT.size <= end:
        length, _, kind = _WIN_CERT.unpack_from(data, offset)
        if length < _WIN_CERT.size:
            break
        if kind == _PKCS_SIGNED_DATA:
            blob = data[offset + _WIN_CERT.size : offset + length]
            found.extend(pkcs7.load_der_pkcs7_certificates(blob))
        offset += (length + 7) // 8 * 8
    return found


def _certificate(cert: x509.Certificate) -> dict[str, str]:
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.astimezone(UTC).isoformat(),
        "not_after": cert.not_valid_after_utc.astimezone(UTC).isoformat(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def describe(data: bytes) -> dict[str, Any]:
    """The report as a JSON-ready dict: sections, texts, signers, layout problems."""
    layout = uki.inspect(data)
    return {
        "sections": [
            {
                "name": s.name,
                "size": s.virtual_size,
                "sha256": hashlib.sha256(s.data).hexdigest(),
                "virtual_address": s.virtual_address,
                "file_offset": s.raw_offset,
            }
            for s in layout.sections
        ],
        "text": {name: layout.text(name) for name in TEXT_SECTIONS if layout.section(name)},
        "signed": layout.signed,
        "signers": [_certificate(c) for c in signers(data)],
        "problems": layout.problems,
    }


def render(report: dict[str, Any]) -> list[str]:
    """The report as lines of text."""
    lines = [f"{'section':<10} {'size':>12}  sha256"]
    lines += [f"{s['name']:<10} {s['size']:>12}  {s['sha256']}" for s in report["sections"]]
    for name, text in report["text"].items():
        lines.append(f"{name}:")
        lines += [f"    {line}" for line in text.strip().splitlines()]
    if not report["signers"]:
        lines.append("signed:  no")
    for cert in report["signers"]:
        lines.append(f"signed by: {cert['subject']} (issuer {cert['issuer']})")
        lines.append(f"    valid {cert['not_before']} to {cert['not_after']}")
    return lines
