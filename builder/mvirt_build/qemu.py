"""QEMU command lines for booting the image: UEFI (OVMF, the UKI on an ESP disk) or direct
kernel boot. One builder of command lines, used by `mvirt-build boot` and the tests."""

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mvirt_build.errors import BuildError

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


def option_path(path: Path) -> str:
    """`path` as the value of a QEMU `-drive`/`-chardev` option: a comma would end the value
    and start another option, so it is doubled (QEMU's escape); control characters are refused."""
    text = str(path)
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise BuildError(f"path {text!r} has control characters and cannot be given to QEMU")
    return text.replace(",", ",,")


def data_disk_args(disks: Sequence[Path]) -> list[str]:
    """QEMU options attaching `disks` as raw virtio disks (after the boot disk: /dev/vdb,
    /dev/vdc, ... in the node)."""
    argv: list[str] = []
    for index, disk in enumerate(disks):
        argv += [
            "-drive", f"if=none,id=data{index},format=raw,file={option_path(disk)}",
            "-device", f"virtio-blk-pci,drive=data{index}",
        ]  # fmt: skip
    return argv


def plain_option_path(path: Path) -> str:
    """`path` for tools whose options have no escape for commas (cloud-hypervisor): refused
    when it holds one."""
    text = option_path(path)
    if "," in text or "=" in text:
        raise BuildError(
            f"path {path} has ',' or '=' which cloud-hypervisor's options cannot carry",
            "use an output or cache folder whose path has neither",
        )
    return text


@dataclass
class QemuMachine:
    """What to boot and how; `command()` renders the QEMU argv."""

    accel: str = "tcg"
    memory_mb: int = 512
    cpus: int = 1
    # UEFI boot: a disk image with an ESP, and the firmware (code, writable variable store).
    disk: Path | None = None
    cdrom: Path | None = None  # an ISO in a CD drive (El Torito boot)
    ovmf_code: Path = OVMF_CODE
    ovmf_vars: Path | None = None
    secure_boot: bool = False
    # Direct kernel boot.
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None
    # Extra devices and options (network, QMP, more disks).
    extra: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        """The argv of a QEMU that shows the serial console on stdout and exits on reboot."""
        if shutil.which(QEMU) is None:
            raise BuildError(f"{QEMU} not found", "apt-get install qemu-system-x86 ovmf")
        machine = "q35,smm=on" if self.secure_boot else "q35"
        argv = [QEMU, "-machine", machine, "-accel", self.accel, "-m", str(self.memory_mb),
                "-smp", str(self.cpus), "-nodefaults", "-display", "none", "-serial", "stdio",
                "-no-reboot", "-device", "virtio-rng-pci"]  # fmt: skip
        if self.kernel is not None:
            argv += ["-kernel", str(self.kernel)]
            if self.initrd is not None:
                argv += ["-initrd", str(self.initrd)]
            if self.cmdline:
                argv += ["-append", self.cmdline]
        else:
            if (self.disk is None and self.cdrom is None) or self.ovmf_vars is None:
                raise BuildError("UEFI boot needs a disk image and a copy of the OVMF variables")
            if self.secure_boot:
                argv += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
            code, variables = option_path(self.ovmf_code), option_path(self.ovmf_vars)
            argv += [
                "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                "-drive", f"if=pflash,format=raw,unit=1,file={variables}",
            ]  # fmt: skip
            if self.disk is not None:
                argv += ["-drive", f"if=none,id=boot,format=raw,file={option_path(self.disk)}",
                         "-device", "virtio-blk-pci,drive=boot,bootindex=0"]  # fmt: skip
            if self.cdrom is not None:
                iso = option_path(self.cdrom)
                cd = f"if=none,id=cd,media=cdrom,readonly=on,format=raw,file={iso}"
                argv += ["-drive", cd, "-device", "ide-cd,drive=cd,bootindex=1"]
        return argv + self.extra


def fresh_vars(dest: Path, template: Path = OVMF_VARS) -> Path:
    """A writable copy of an OVMF variable store (each boot gets its own)."""
    if not template.is_file():
        raise BuildError(f"OVMF variable store {template} not found", "apt-get install ovmf")
    shutil.copyfile(template, dest)
    return dest
