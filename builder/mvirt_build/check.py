"""`mvirt-build check`: which tools the build needs are missing, and the command that installs
them (like the reference's `make check`)."""

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Requirement:
    """A tool or file, and the Debian package that provides it."""

    what: str
    package: str
    backports: bool = False

    def present(self) -> bool:
        """Whether the tool is on PATH or the file exists."""
        return (
            Path(self.what).exists() if self.what.startswith("/") else bool(shutil.which(self.what))
        )


REQUIREMENTS = (
    Requirement("make", "make"),
    Requirement("gcc", "build-essential"),
    Requirement("bc", "bc"),
    Requirement("bison", "bison"),
    Requirement("flex", "flex"),
    Requirement("/usr/include/libelf.h", "libelf-dev"),
    Requirement("/usr/include/openssl/ssl.h", "libssl-dev"),
    Requirement("/usr/src/linux-source-6.1.tar.xz", "linux-source-6.1"),
    Requirement("mkosi", "mkosi", backports=True),
    Requirement("bwrap", "bubblewrap"),
    Requirement("cpio", "cpio"),
    Requirement("chroot", "coreutils"),
    Requirement("/usr/lib/systemd/boot/efi/linuxx64.efi.stub", "systemd-boot-efi"),
    Requirement("qemu-system-x86_64", "qemu-system-x86"),
    Requirement("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
    Requirement("mkfs.fat", "dosfstools"),
    Requirement("mcopy", "mtools"),
    Requirement("sbsign", "sbsigntool"),
    Requirement("sbverify", "sbsigntool"),
    Requirement("xorriso", "xorriso"),
    Requirement("mksquashfs", "squashfs-tools"),
)


def missing() -> list[Requirement]:
    """The requirements not met on this machine."""
    return [r for r in REQUIREMENTS if not r.present()]


def install_commands(reqs: list[Requirement]) -> list[str]:
    """apt-get commands that install what `reqs` lack."""
    commands = []
    plain = sorted({r.package for r in reqs if not r.backports})
    backports = sorted({r.package for r in reqs if r.backports})
    if plain:
        commands.append("apt-get install " + " ".join(plain))
    if backports:
        commands.append("apt-get install -t bookworm-backports " + " ".join(backports))
    return commands
