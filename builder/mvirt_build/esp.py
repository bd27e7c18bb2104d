"""The one EFI system partition builder: a FAT image holding one EFI program as the
removable-media default (`EFI/BOOT/BOOTX64.EFI`), made with mkfs.fat and mtools (no mounting,
no root needed). The ISO embeds it as its boot partition and `mvirt-build boot` attaches it as
a disk, so both boot the same bytes: the volume ID and every timestamp are fixed or derived from
SOURCE_DATE_EPOCH."""

from pathlib import Path

from mvirt_build.errors import BuildError
from mvirt_build.run import run

ESP_LABEL = "MVIRT-ESP"
ESP_VOLUME_ID = "4d564952"  # "MVIR": fixed, so the ESP does not depend on the clock
BOOT_PATH = "EFI/BOOT/BOOTX64.EFI"
KIB = 1024
FAT_HINT = "apt-get install dosfstools mtools"


def tool_env(epoch: int) -> dict[str, str]:
    """mtools and xorriso both take their timestamps from SOURCE_DATE_EPOCH when set."""
    return {"SOURCE_DATE_EPOCH": str(epoch), "TZ": "UTC", "MTOOLS_SKIP_CHECK": "1"}


def esp_size_kib(payload: int, slack_kib: int) -> int:
    """FAT image size in KiB for `payload` bytes: the file, FAT metadata and some slack,
    rounded to 64 KiB (FAT12/16 tables for images this small stay well below the slack)."""
    need = -(-payload // KIB) + slack_kib
    return -(-need // 64) * 64


def build_esp(efi: Path, out: Path, epoch: int) -> Path:
    """Write a FAT image at `out` holding `efi` as EFI/BOOT/BOOTX64.EFI, sized to fit."""
    env = tool_env(epoch)
    payload = efi.stat().st_size
    slack = 256
    for _ in range(6):
        out.unlink(missing_ok=True)
        size = str(esp_size_kib(payload, slack))
        run(["mkfs.fat", "-C", "--invariant", "-i", ESP_VOLUME_ID, "-n", ESP_LABEL, out, size],
            env=env, hint=FAT_HINT)  # fmt: skip
        run(["mmd", "-i", out, "::/EFI", "::/EFI/BOOT"], env=env, hint=FAT_HINT)
        try:
            run(["mcopy", "-i", out, efi, f"::/{BOOT_PATH}"], env=env, hint=FAT_HINT)
            return out
        except BuildError as exc:
            if "full" not in str(exc).lower():
                raise
        slack *= 2  # the estimate was short for this payload: grow and try again
    raise BuildError(f"cannot fit {efi} ({payload} bytes) into a FAT image")
