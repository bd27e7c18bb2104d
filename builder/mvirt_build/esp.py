"""A FAT EFI system partition image holding one EFI program as the removable-media default
(`EFI/BOOT/BOOTX64.EFI`), made with mkfs.fat and mtools (no mounting, no root needed)."""

import os
from pathlib import Path

from mvirt_build.run import run

SLACK = 1 << 20
HINT = "apt-get install dosfstools mtools"


def esp_size(payload: int) -> int:
    """Bytes of a FAT image that holds `payload` bytes with room for FAT metadata."""
    size = payload + payload // 16 + SLACK
    return (size + (1 << 20) - 1) // (1 << 20) * (1 << 20)


def make_esp(efi_program: Path, dest: Path, epoch: int = 0) -> Path:
    """Write `dest`: a FAT image with `efi_program` as EFI/BOOT/BOOTX64.EFI."""
    size = esp_size(efi_program.stat().st_size)
    dest.unlink(missing_ok=True)
    run(["mkfs.fat", "-C", "--invariant", "-i", "6d766972", "-n", "MVIRT-ESP", str(dest),
         str(size // 1024)], hint=HINT)  # fmt: skip
    env = {"MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(epoch)}
    run(["mmd", "-i", str(dest), "::/EFI", "::/EFI/BOOT"], env=env, hint=HINT)
    run(["mcopy", "-i", str(dest), "-m", str(efi_program), "::/EFI/BOOT/BOOTX64.EFI"], env=env,
        hint=HINT)  # fmt: skip
    os.utime(dest)
    return dest
