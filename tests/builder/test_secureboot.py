"""Our certificate enrolled into OVMF: Secure Boot then runs only what we signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.iso import build_iso
from mvirt_build.keys import generate_keys
from mvirt_build.secureboot import enroll_certificate, enrolled_subjects, firmware_for
from mvirt_build.sign import sign_pe

from .qemu_console import boot_until

EFI_APP = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
STARTED = "Reboot Into Firmware Interface"
DENIED = "Access Denied"


@pytest.fixture
def keys(tmp_path):
    return generate_keys(tmp_path / "keys", common_name="mvirt test SB")


def test_certificate_is_enrolled_as_pk_kek_and_db(tmp_path, keys):
    out = enroll_certificate(keys.cert, tmp_path / "vars.fd")
    assert enrolled_subjects(out) == {
        "PK": ["mvirt test SB"],
        "KEK": ["mvirt test SB"],
        "db": ["mvirt test SB"],
    }
    assert out.stat().st_size == Path("/usr/share/OVMF/OVMF_VARS_4M.fd").stat().st_size


def test_der_certificate_enrolls_too(tmp_path, keys):
    out = enroll_certificate(keys.cert_der, tmp_path / "vars.fd")
    assert enrolled_subjects(out)["db"] == ["mvirt test SB"]


def test_not_a_certificate_is_refused_without_output(tmp_path, keys):
    with pytest.raises(BuildError, match="certificate"):
        enroll_certificate(keys.key, tmp_path / "vars.fd")
    assert not (tmp_path / "vars.fd").exists()


def _boot_disk(tmp_path: Path, keys, efi: Path) -> str:
    iso = build_iso(efi, tmp_path / f"{efi.stem}.iso", epoch=0).path
    firmware = firmware_for(keys.cert, tmp_path / f"fw-{efi.stem}")
    return boot_until(
        [*firmware.qemu_args(), "-nodefaults",
         "-drive", f"file={iso},format=raw,if=none,id=d", "-device", "virtio-blk-pci,drive=d"],
        tmp_path / f"{efi.stem}.log",
        (STARTED, DENIED),
    )  # fmt: skip


@pytest.mark.e2e
def test_signed_application_starts_under_enforcing_secure_boot(tmp_path, keys):
    signed = tmp_path / "signed.efi"
    sign_pe(EFI_APP, signed, keys.key, keys.cert)
    console = _boot_disk(tmp_path, keys, signed)
    assert STARTED in console
    assert DENIED not in console


@pytest.mark.e2e
def test_unsigned_application_is_refused(tmp_path, keys):
    console = _boot_disk(tmp_path, keys, EFI_APP)
    assert DENIED in console
    assert STARTED not in console


@pytest.mark.e2e
def test_application_signed_by_another_key_is_refused(tmp_path, keys):
    other = generate_keys(tmp_path / "other", common_name="not enrolled")
    signed = tmp_path / "other.efi"
    sign_pe(EFI_APP, signed, other.key, other.cert)
    console = _boot_disk(tmp_path, keys, signed)
    assert DENIED in console
    assert STARTED not in console
