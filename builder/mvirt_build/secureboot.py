"""OVMF with our keys: a variable store with the build's certificate as PK, KEK and db.

Booting `OVMF_CODE_4M.secboot.fd` with such a store enforces Secure Boot against our own
certificate only (no Microsoft keys), which is what shows that the firmware really checks the
signatures the build makes. The secboot firmware keeps its variables behind SMM, so QEMU needs
`-machine q35,smm=on` and the pflash marked secure (see `SecureBootFirmware.qemu_args`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.x509.oid import NameOID
from virt.firmware.efi import efivar
from virt.firmware.varstore import autodetect

from mvirt_build.errors import BuildError
from mvirt_build.qemu import option_path

OVMF_DIR = Path("/usr/share/OVMF")
OVMF_CODE_SECBOOT = OVMF_DIR / "OVMF_CODE_4M.secboot.fd"
OVMF_VARS_TEMPLATE = OVMF_DIR / "OVMF_VARS_4M.fd"
# Owner GUID recorded with our certificates in PK/KEK/db (any fixed GUID will do).
OWNER_GUID = "4d564952-5455-4f53-8000-736563626f6f"
SIGDB_NAMES = ("PK", "KEK", "db")


@dataclass(frozen=True)
class SecureBootFirmware:
    """The firmware code and an enrolled variable store for one VM."""

    code: Path
    vars: Path

    def qemu_args(self) -> list[str]:
        """QEMU options for this firmware (the machine type must be q35 with SMM)."""
        return [
            "-machine", "q35,smm=on",
            "-global", "driver=cfi.pflash01,property=secure,value=on",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={option_path(self.code)}",
            "-drive", f"if=pflash,format=raw,unit=1,file={option_path(self.vars)}",
        ]  # fmt: skip


def enroll_certificate(cert: Path, out: Path, template: Path = OVMF_VARS_TEMPLATE) -> Path:
    """Write a copy of `template` to `out` with `cert` enrolled as PK, KEK and db and Secure
    Boot switched on; nothing is written when any step fails."""
    if not template.is_file():
        raise BuildError(f"OVMF variable store {template} not found", hint="apt-get install ovmf")
    if not cert.is_file():
        raise BuildError(f"certificate {cert} not found", hint="run `mvirt-build genkey`")
    # virt-firmware narrates every step on the root logger at INFO: keep the build output clean.
    logging.disable(logging.INFO)
    try:
        varstore = autodetect.open_varstore(str(template))
        if varstore is None:
            raise BuildError(f"{template} is not an edk2 variable store")
        varlist = varstore.get_varlist()
        try:
            for name in SIGDB_NAMES:
                varlist.add_cert(name, OWNER_GUID, str(cert), True)
        except ValueError as exc:
            raise BuildError(f"{cert} is not a PEM or DER X.509 certificate: {exc}") from None
        varlist.enable_secureboot()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            varstore.write_varstore(str(tmp), varlist)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        logging.disable(logging.NOTSET)
    return out


def enrolled_subjects(vars_file: Path) -> dict[str, list[str]]:
    """The certificate common names in PK, KEK and db of a variable store."""
    varstore = autodetect.open_varstore(str(vars_file))
    if varstore is None:
        raise BuildError(f"{vars_file} is not an edk2 variable store")
    varlist: efivar.EfiVarList = varstore.get_varlist()
    result: dict[str, list[str]] = {}
    for name in SIGDB_NAMES:
        var = varlist.get(name)
        names: list[str] = []
        if var is not None and var.sigdb is not None:
            for siglist in var.sigdb:
                if siglist.x509 is not None:
                    cns = siglist.x509.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                    names.extend(str(cn.value) for cn in cns)
        result[name] = names
    return result


def firmware_for(cert: Path, state_dir: Path) -> SecureBootFirmware:
    """A fresh enrolled variable store under `state_dir` paired with the secboot OVMF code."""
    if not OVMF_CODE_SECBOOT.is_file():
        raise BuildError(f"{OVMF_CODE_SECBOOT} not found", hint="apt-get install ovmf")
    vars_file = enroll_certificate(cert, state_dir / "OVMF_VARS_4M.mvirt.fd")
    return SecureBootFirmware(OVMF_CODE_SECBOOT, vars_file)
