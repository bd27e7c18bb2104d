"""The hybrid ISO: El Torito EFI entry and GPT ESP are the same bytes, reproducible, small."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest

from mvirt_build.errors import BuildError
from mvirt_build.iso import build_iso, el_torito_entries, extract_boot_file, find_esp

from .qemu_console import boot_until

EFI_APP = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# systemd-boot draws its menu once the firmware started it.
STARTED = "Reboot Into Firmware Interface"
EPOCH = 1_700_000_000


def test_iso_boots_the_efi_file_from_cd_and_disk_layouts(tmp_path):
    iso = build_iso(EFI_APP, tmp_path / "a.iso", epoch=EPOCH).path
    offset, size = find_esp(iso)
    [entry] = el_torito_entries(iso)
    assert (entry.platform, entry.emulation) == ("UEFI", "none")
    assert entry.lba * 2048 == offset  # the CD boot image is the disk's ESP, stored once
    assert size >= EFI_APP.stat().st_size
    extract_boot_file(iso, tmp_path / "BOOTX64.EFI")
    assert (tmp_path / "BOOTX64.EFI").read_bytes() == EFI_APP.read_bytes()


def test_same_inputs_give_the_same_bytes(tmp_path):
    a = build_iso(EFI_APP, tmp_path / "one/a.iso", epoch=EPOCH).path
    time.sleep(2.1)  # a clock leaking into the image (FAT or ISO dates) would show now
    b = build_iso(EFI_APP, tmp_path / "two/a.iso", epoch=EPOCH).path
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    c = build_iso(EFI_APP, tmp_path / "three/a.iso", epoch=EPOCH + 1).path
    assert a.read_bytes() != c.read_bytes()  # the date is really taken from the epoch


def test_iso_is_at_most_one_mib_larger_than_its_payload(tmp_path):
    # A payload the size of a real UKI, so FAT tables and ISO metadata scale as they would.
    big = tmp_path / "big.efi"
    big.write_bytes(EFI_APP.read_bytes() + bytes(20 * 1024 * 1024))
    result = build_iso(big, tmp_path / "big.iso", epoch=EPOCH)
    assert result.size - result.payload_size <= 1024 * 1024
    extract_boot_file(result.path, tmp_path / "back.efi")
    assert (tmp_path / "back.efi").read_bytes() == big.read_bytes()


def test_missing_payload_is_a_clear_error(tmp_path):
    with pytest.raises(BuildError, match="make uos"):
        build_iso(tmp_path / "nope.efi", tmp_path / "x.iso", epoch=EPOCH)
    assert not (tmp_path / "x.iso").exists()


def test_an_iso_without_gpt_is_reported(tmp_path):
    plain = tmp_path / "plain.iso"
    plain.write_bytes(bytes(64 * 1024))
    with pytest.raises(BuildError, match="no GPT"):
        find_esp(plain)


def _firmware(tmp_path: Path) -> list[str]:
    vars_copy = tmp_path / "vars.fd"
    shutil.copyfile(OVMF_VARS, vars_copy)
    return [
        "-machine", "q35",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
    ]  # fmt: skip


def _padded_efi_app(tmp_path: Path, size: int) -> Path:
    """The EFI application with zeros appended to `size` bytes (the loader reads the PE
    headers; data past the last section is ignored), like a UKI of that size."""
    big = tmp_path / "big.efi"
    shutil.copyfile(EFI_APP, big)
    with big.open("r+b") as f:
        f.truncate(size)
    return big


@pytest.mark.e2e
@pytest.mark.parametrize("payload_mib", [0, 40], ids=["small", "past-32-MiB"])
def test_iso_boots_as_cdrom(tmp_path, payload_mib):
    # An El Torito entry counts 512-byte sectors in 16 bits (32 MiB at most): past that the
    # firmware takes the boot image to reach the end of the ISO 9660 volume, so the ESP must
    # lie inside the volume for a large UKI to boot from CD.
    efi = _padded_efi_app(tmp_path, payload_mib << 20) if payload_mib else EFI_APP
    iso = build_iso(efi, tmp_path / "a.iso", epoch=EPOCH).path
    console = boot_until(
        [
            *_firmware(tmp_path),
            "-drive",
            f"file={iso},media=cdrom,if=none,id=cd",
            "-device",
            "ide-cd,drive=cd",
        ],
        tmp_path / "serial.log",
        (STARTED,),
    )
    assert "DVD-ROM" in console and STARTED in console


@pytest.mark.e2e
def test_iso_boots_as_plain_disk(tmp_path):
    iso = build_iso(EFI_APP, tmp_path / "a.iso", epoch=EPOCH).path
    console = boot_until(
        [
            *_firmware(tmp_path),
            "-nodefaults",
            "-drive",
            f"file={iso},format=raw,if=none,id=d",
            "-device",
            "virtio-blk-pci,drive=d",
        ],
        tmp_path / "serial.log",
        (STARTED,),
    )
    assert STARTED in console


def test_boot_disk_and_iso_carry_the_same_esp(tmp_path):
    """`mvirt-build boot` and the ISO use the one ESP builder: same bytes for the same UKI."""
    from mvirt_build.esp import build_esp  # noqa: PLC0415

    iso = tmp_path / "app.iso"
    build_iso(EFI_APP, iso, epoch=1_700_000_000)
    offset, size = find_esp(iso)
    disk = build_esp(EFI_APP, tmp_path / "esp.img", 1_700_000_000)
    assert iso.read_bytes()[offset : offset + size] == disk.read_bytes()
