"""A hybrid ISO that boots on UEFI machines from CD and, written to a USB stick, as a disk.

Layout: a FAT ESP image holding `EFI/BOOT/BOOTX64.EFI` (the signed UKI) is a file of the ISO
9660 volume; the El Torito catalog's no-emulation EFI entry points at it and the GPT marks the
same blocks as the EFI system partition (type EF00), so the UKI is stored once. Firmware booting
from a CD follows El Torito, firmware booting from a disk reads the GPT. An El Torito entry
counts at most 65,535 sectors of 512 bytes (32 MiB); a larger boot image gets a count of 0,
which the firmware (EDK2/OVMF) reads as "up to the end of the ISO 9660 volume". That is why the
ESP lies inside the volume and not appended after it: appended, a UKI past 32 MiB would not
boot from CD. Every timestamp, the FAT volume ID and the
GPT GUIDs derive from SOURCE_DATE_EPOCH, so the same inputs give the same bytes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mvirt_build.errors import BuildError
from mvirt_build.esp import BOOT_PATH, FAT_HINT, build_esp, tool_env
from mvirt_build.run import output, run

KIB = 1024
ESP_NAME = "esp.img"


@dataclass(frozen=True)
class IsoResult:
    """The ISO written and the sizes that matter for it."""

    path: Path
    size: int
    esp_size: int
    payload_size: int


def build_iso(efi: Path, out: Path, *, epoch: int, volume_id: str = "MVIRT") -> IsoResult:
    """Write the hybrid ISO for EFI application `efi` to `out` (atomically)."""
    if not efi.is_file():
        raise BuildError(f"{efi} does not exist", hint="build the UKI first: make uos")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".iso-", dir=out.parent) as tmp:
        work = Path(tmp)
        tree = work / "tree"
        tree.mkdir()
        esp = tree / ESP_NAME
        build_esp(efi, esp, epoch)
        os.utime(esp, (epoch, epoch))
        # xorriso dates the root folder's records by the folder's own mtime, not the epoch.
        os.utime(tree, (epoch, epoch))
        tmp_iso = work / "out.iso"
        run(
            [
                "xorriso", "-as", "mkisofs",
                "-o", tmp_iso,
                "-V", volume_id,
                "-iso-level", "3",
                "-no-pad",
                # The ESP is a file of the ISO 9660 volume, the El Torito EFI boot image and
                # a GPT partition (EF00) over the same blocks.
                "-e", ESP_NAME,
                "-no-emul-boot",
                "-efi-boot-part", "--efi-boot-image",
                tree,
            ],
            env=tool_env(epoch),
            hint="apt-get install xorriso",
        )  # fmt: skip
        os.replace(tmp_iso, out)
        esp_size = esp.stat().st_size
    return IsoResult(out, out.stat().st_size, esp_size, efi.stat().st_size)


_ESP_TYPE = bytes.fromhex("28732ac11ff8d211ba4b00a0c93ec93b")  # C12A7328-F81F-11D2-... (LE)
SECTOR = 512


def find_esp(iso: Path) -> tuple[int, int]:
    """Byte offset and size of the EFI system partition in the ISO's GPT."""
    with iso.open("rb") as f:
        f.seek(SECTOR)
        header = f.read(92)
        if header[:8] != b"EFI PART":
            raise BuildError(f"{iso}: no GPT (not a hybrid image)")
        entries_lba = int.from_bytes(header[72:80], "little")
        count = int.from_bytes(header[80:84], "little")
        entry_size = int.from_bytes(header[84:88], "little")
        f.seek(entries_lba * SECTOR)
        table = f.read(count * entry_size)
    for i in range(count):
        entry = table[i * entry_size : (i + 1) * entry_size]
        if entry[:16] == _ESP_TYPE:
            first = int.from_bytes(entry[32:40], "little")
            last = int.from_bytes(entry[40:48], "little")
            return first * SECTOR, (last - first + 1) * SECTOR
    raise BuildError(f"{iso}: GPT has no EFI system partition")


def extract_boot_file(iso: Path, out: Path) -> None:
    """Copy EFI/BOOT/BOOTX64.EFI out of the ISO's ESP to `out`."""
    offset, _ = find_esp(iso)
    out.unlink(missing_ok=True)
    run(["mcopy", "-n", "-i", f"{iso}@@{offset}", f"::/{BOOT_PATH}", out], hint=FAT_HINT)


@dataclass(frozen=True)
class ElToritoEntry:
    """One El Torito boot image: platform, emulation, and where it starts (2 KiB blocks)."""

    platform: str
    emulation: str
    lba: int


def el_torito_entries(iso: Path) -> list[ElToritoEntry]:
    """The El Torito boot images of `iso`, as xorriso reports them."""
    report = output(
        ["xorriso", "-indev", iso, "-report_el_torito", "plain"], hint="apt-get install xorriso"
    )
    entries = []
    for line in report.splitlines():
        if line.startswith("El Torito boot img :"):
            fields = line.split(":", 1)[1].split()
            # N Pltf B Emul Ld_seg Hdpt Ldsiz LBA
            entries.append(ElToritoEntry(fields[1], fields[3], int(fields[-1])))
    return entries
