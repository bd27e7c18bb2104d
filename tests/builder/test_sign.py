"""Signing PE images with sbsign, checked with sbverify."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.keys import generate_keys
from mvirt_build.sign import is_signed, sign_pe, verify_pe

EFI_APP = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys")


def test_signed_image_verifies_with_its_certificate(tmp_path, keys):
    out = tmp_path / "signed.efi"
    sign_pe(EFI_APP, out, keys.key, keys.cert)
    assert is_signed(out)
    assert not is_signed(EFI_APP)
    verify_pe(out, keys.cert)


def test_signature_does_not_verify_with_another_certificate(tmp_path, keys):
    other = generate_keys(tmp_path / "other")
    out = tmp_path / "signed.efi"
    sign_pe(EFI_APP, out, keys.key, keys.cert)
    with pytest.raises(BuildError, match="does not verify"):
        verify_pe(out, other.cert)


def test_changed_byte_after_signing_breaks_verification(tmp_path, keys):
    out = tmp_path / "signed.efi"
    sign_pe(EFI_APP, out, keys.key, keys.cert)
    data = bytearray(out.read_bytes())
    data[0x1000] ^= 0x01  # inside the first section, covered by the Authenticode hash
    out.write_bytes(bytes(data))
    with pytest.raises(BuildError, match="does not verify"):
        verify_pe(out, keys.cert)


def test_signing_failure_raises_and_leaves_no_output(tmp_path, keys):
    out = tmp_path / "signed.efi"
    with pytest.raises(BuildError, match="sbsign"):
        sign_pe(EFI_APP, out, keys.cert, keys.cert)  # a certificate is not a key
    assert not out.exists()
    assert not list(tmp_path.glob(".signed.efi*"))


def test_not_a_pe_file_cannot_be_signed(tmp_path, keys):
    junk = tmp_path / "junk.efi"
    junk.write_bytes(b"not a PE image" * 100)
    with pytest.raises(BuildError):
        sign_pe(junk, tmp_path / "out.efi", keys.key, keys.cert)


def test_signing_in_place(tmp_path, keys):
    target = tmp_path / "app.efi"
    shutil.copyfile(EFI_APP, target)
    sign_pe(target, target, keys.key, keys.cert)
    verify_pe(target, keys.cert)
