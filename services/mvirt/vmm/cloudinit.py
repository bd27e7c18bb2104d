"""The cloud-init NoCloud seed: an ISO9660 image labelled ``cidata`` holding ``user-data``,
``meta-data`` and ``network-config``.

libarchive writes the image (with Rock Ridge so the file names stay as written). It upper-cases
the volume identifier, as ISO9660's d-characters demand, but NoCloud and ``cloud-localds``
use the lower-case label ``cidata``; the volume descriptors are patched to carry it exactly.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from mvirt.daemon.errors import FailedPreconditionError

LABEL = "cidata"
_SECTOR = 2048
_FIRST_DESCRIPTOR = 16
_VOLUME_ID = slice(40, 72)  # 32 bytes in both the primary and the Joliet descriptor


def meta_data(vm_id: str, hostname: str) -> str:
    """NoCloud meta-data: the instance id changes per VM so cloud-init runs once per VM."""
    return f"instance-id: {vm_id}\nlocal-hostname: {hostname}\n"


def network_config(macs: list[str]) -> str:
    """Network config v2: DHCP on every NIC, matched by MAC (names differ between guests)."""
    if not macs:
        return "version: 2\nethernets: {}\n"
    lines = ["version: 2", "ethernets:"]
    for index, mac in enumerate(macs):
        lines += [
            f"  nic{index}:",
            "    match:",
            f'      macaddress: "{mac.lower()}"',
            "    dhcp4: true",
            "    dhcp6: true",
        ]
    return "\n".join(lines) + "\n"


def _set_volume_label(path: Path, label: str) -> None:
    """Overwrite the volume id of the primary (type 1) and Joliet (type 2) descriptors."""
    with open(path, "r+b") as iso:
        sector = _FIRST_DESCRIPTOR
        while True:
            iso.seek(sector * _SECTOR)
            descriptor = bytearray(iso.read(_SECTOR))
            if len(descriptor) < _SECTOR or descriptor[1:6] != b"CD001":
                raise ValueError(f"{path}: not an ISO9660 image")
            kind = descriptor[0]
            if kind == 255:  # set terminator
                return
            if kind == 1:
                descriptor[_VOLUME_ID] = label.encode("ascii").ljust(32, b" ")
            elif kind == 2:
                descriptor[_VOLUME_ID] = _ucs2_padded(label)
            iso.seek(sector * _SECTOR)
            iso.write(descriptor)
            sector += 1


def _ucs2_padded(label: str) -> bytes:
    return label.ljust(16).encode("utf-16-be")


def _libarchive() -> ModuleType:
    """libarchive-c, loaded on first use: the node image carries no libarchive (its library
    closure is larger than the rest of the image), so only VMs with user data need it."""
    try:
        import libarchive  # noqa: PLC0415

        return libarchive
    except (ImportError, OSError, AttributeError):
        # libarchive-c raises AttributeError when it cannot find the C library.
        raise FailedPreconditionError(
            "config.user_data needs libarchive (the cloud-init seed is an ISO image it writes), "
            "and libarchive is not installed on this host; create the VM without user data, "
            "or install libarchive13"
        ) from None


def write_seed(path: Path, *, user_data: str, vm_id: str, hostname: str, macs: list[str]) -> None:
    """Write the seed image atomically (a failed write leaves no half-written file)."""
    libarchive = _libarchive()
    files = {
        "user-data": user_data.encode(),
        "meta-data": meta_data(vm_id, hostname).encode(),
        "network-config": network_config(macs).encode(),
    }
    tmp = path.with_suffix(".tmp")
    try:
        with libarchive.file_writer(str(tmp), "iso9660", options="rockridge,joliet") as archive:
            for name, data in files.items():
                archive.add_file_from_memory(name, len(data), data, permission=0o644)
        _set_volume_label(tmp, LABEL)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
