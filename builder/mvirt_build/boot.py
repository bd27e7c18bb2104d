"""Smoke-boot the built image: QEMU (UEFI through OVMF, or direct kernel boot) or
cloud-hypervisor, watching the serial console for the ready line."""

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mvirt_build import api_boot
from mvirt_build.accel import choose_accelerator
from mvirt_build.config import BuildConfig, initramfs_image
from mvirt_build.console import BootResult, watch
from mvirt_build.errors import BuildError
from mvirt_build.esp import build_esp
from mvirt_build.qemu import QemuMachine, data_disk_args, fresh_vars, plain_option_path
from mvirt_build.secureboot import firmware_for
from mvirt_build.stages.uki import sbat_line

CLOUD_HYPERVISOR = "cloud-hypervisor"


def qemu_machine(
    config: BuildConfig,
    firmware: str,
    workdir: Path,
    accel: str,
    uki: Path,
    iso: Path | None = None,
    iso_as: str = "cdrom",
    secure_boot_cert: Path | None = None,
) -> QemuMachine:
    """The QEMU machine that boots this build's image with `firmware` (uefi or direct): the
    UKI on an ESP disk, or an ISO as CD or disk; with Secure Boot enforcing when given the
    certificate to enroll."""
    if firmware == "direct":
        kernel = config.output_dir / "kernel/bzImage"
        initrd = initramfs_image(config)
        return QemuMachine(accel=accel, kernel=kernel, initrd=initrd, cmdline=config.kernel.cmdline)
    machine = QemuMachine(accel=accel)
    if secure_boot_cert is not None:
        enrolled = firmware_for(secure_boot_cert, workdir)
        machine.secure_boot = True
        machine.ovmf_code, machine.ovmf_vars = enrolled.code, enrolled.vars
    else:
        machine.ovmf_vars = fresh_vars(workdir / "vars.fd")
    if iso is not None and iso_as == "cdrom":
        machine.cdrom = iso
    elif iso is not None:
        machine.disk = iso
    else:
        machine.disk = build_esp(uki, workdir / "esp.img", config.source_date_epoch)
    return machine


def cloud_hypervisor_command(config: BuildConfig, firmware: str, workdir: Path, uki: Path,
                             ch_firmware: Path | None) -> list[str]:  # fmt: skip
    """cloud-hypervisor argv: direct kernel boot, or firmware + ESP disk (needs working KVM)."""
    binary = shutil.which(CLOUD_HYPERVISOR)
    if binary is None:
        raise BuildError(
            "cloud-hypervisor is not installed on this machine",
            "put the binary on PATH (the builder's pinned download), or use --hypervisor qemu",
        )
    argv = [binary, "--cpus", "boot=1", "--memory", "size=512M", "--serial", "tty",
            "--console", "off", "--rng"]  # fmt: skip
    if firmware == "direct":
        return [
            *argv,
            "--kernel", str(config.output_dir / "kernel/bzImage"),
            "--initramfs", str(initramfs_image(config)),
            "--cmdline", config.kernel.cmdline,
        ]  # fmt: skip
    if ch_firmware is None or not ch_firmware.is_file():
        raise BuildError("UEFI boot under cloud-hypervisor needs its firmware (--ch-firmware)")
    esp = build_esp(uki, workdir / "esp.img", config.source_date_epoch)
    return [*argv, "--kernel", str(ch_firmware), "--disk", f"path={plain_option_path(esp)}"]


def boot(
    config: BuildConfig,
    *,
    uki: Path,
    firmware: str = "uefi",
    hypervisor: str = "qemu",
    timeout: float = 120.0,
    accel: str | None = None,
    ch_firmware: Path | None = None,
    echo: TextIO | None = None,
    iso: Path | None = None,
    iso_as: str = "cdrom",
    secure_boot_cert: Path | None = None,
    api: bool = False,
    disks: Sequence[Path] = (),
    cmdline_words: Sequence[str] = (),
) -> BootResult:
    """Boot the image once and report how it went. With `api`, the API ports are forwarded,
    `mvirt.api=tls` is on the command line, and a machine that got ready keeps running
    (`result.process`; the daemons' fingerprint line is in `result.collected`). `disks` are
    attached as raw virtio disks after the boot disk (/dev/vdb, ... in the node), and
    `cmdline_words` are added to the kernel command line (of an unsigned copy of the UKI)."""
    if api and (hypervisor != "qemu" or iso is not None or secure_boot_cert is not None):
        raise BuildError(
            "--api boots the UKI under QEMU without Secure Boot",
            "drop --iso, --secure-boot and --hypervisor cloud-hypervisor for an API boot",
        )
    words = [api_boot.check_cmdline_word(word) for word in cmdline_words]
    if api:
        words.append(api_boot.API_WORD)
    if (disks or cmdline_words) and (hypervisor != "qemu" or iso is not None):
        raise BuildError(
            "--disk and --cmdline boot the UKI under QEMU",
            "drop --iso and --hypervisor cloud-hypervisor",
        )
    if cmdline_words and secure_boot_cert is not None:
        raise BuildError(
            "--cmdline changes the UKI, which then no longer boots with Secure Boot enforcing",
            "drop --secure-boot, or build the words into mkosi.conf's KernelCommandLine=",
        )
    for disk in disks:
        if not disk.is_file() and not disk.is_block_device():
            raise BuildError(
                f"--disk {disk} is not a file or block device", "make one: truncate -s 20G pool.img"
            )
    with tempfile.TemporaryDirectory(prefix="mvirt-boot-") as tmp:
        workdir = Path(tmp)
        if hypervisor == "cloud-hypervisor":
            argv = cloud_hypervisor_command(config, firmware, workdir, uki, ch_firmware)
        else:
            kernel = config.output_dir / "kernel/bzImage"
            chosen = choose_accelerator(
                config.cache_dir, accel, kernel if kernel.is_file() else None
            )
            if words and firmware == "uefi":
                copy = workdir / "cmdline.efi"
                copy.write_bytes(words_uki(config, uki, words))
                uki = copy
            machine = qemu_machine(
                config, firmware, workdir, chosen, uki, iso, iso_as, secure_boot_cert
            )
            if api:
                machine.extra += api_boot.netdev_args()
            if words and machine.cmdline is not None:
                machine.cmdline += " " + " ".join(words)
            machine.extra += data_disk_args(disks)
            argv = machine.command()
        return watch(argv, timeout, echo=echo, keep_running=api, collect=api_boot.FINGERPRINT)


def words_uki(config: BuildConfig, image: Path, words: Sequence[str]) -> bytes:
    """A copy of the UKI `image` whose command line also has `words` (unsigned)."""
    data, stub, sbat = image.read_bytes(), config.uki.stub.read_bytes(), sbat_line()
    for word in words:
        data = api_boot.with_cmdline_word(data, stub, sbat, word)
    return data
