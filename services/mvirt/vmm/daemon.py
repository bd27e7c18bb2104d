"""mvirt-vmm's entry point: options, backend choice, and wiring into the shared bootstrap."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

import grpc

from mvirt.daemon.server import DaemonContext, DaemonSpec, Service, run
from mvirt.proto import vmm_pb2, vmm_pb2_grpc
from mvirt.vmm import locations
from mvirt.vmm.accel import kvm_works
from mvirt.vmm.backend import Hypervisor
from mvirt.vmm.cloud_hypervisor import DEFAULT_FIRMWARE, CloudHypervisor
from mvirt.vmm.manager import VmManager
from mvirt.vmm.path_policy import DEFAULT_IMAGE_ROOTS
from mvirt.vmm.qemu import CONTROL_TIMEOUT, OVMF_CODE, OVMF_VARS, QemuHypervisor
from mvirt.vmm.serial_log import DEFAULT_MAX_BYTES
from mvirt.vmm.servicer import VmServicer

DEFAULT_PORT = 50051
log = logging.getLogger("mvirt.vmm")
SERVICE_NAME = vmm_pb2.DESCRIPTOR.services_by_name["VmService"].full_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """mvirt-vmm's own options."""
    parser.add_argument(
        "--hypervisor",
        choices=("auto", "qemu", "cloud-hypervisor"),
        default="auto",
        help="backend for the VMs this daemon starts (VMs keep the one that started them); "
        "auto = cloud-hypervisor when it is installed and QEMU is not, or both are and KVM "
        "works; else QEMU",
    )
    parser.add_argument("--qemu-binary", default="qemu-system-x86_64")
    parser.add_argument(
        "--accel",
        choices=("auto", "kvm", "tcg"),
        default="auto",
        help="QEMU accelerator; auto probes KVM with a tiny guest once and falls back to TCG",
    )
    parser.add_argument("--ovmf-code", default=OVMF_CODE, help="UEFI firmware for disk boot")
    parser.add_argument("--ovmf-vars", default=OVMF_VARS, help="UEFI variable store template")
    parser.add_argument(
        "--image-root",
        action="append",
        dest="image_roots",
        metavar="DIR",
        help="directory whose files (kernels, initramfs, disks, vhost-user sockets) VMs may use; "
        f"repeatable (default: {', '.join(DEFAULT_IMAGE_ROOTS)}); the data dir, /etc, /proc, "
        "/sys and /dev (but block devices under a root in /dev) are always refused",
    )
    parser.add_argument(
        "--control-timeout",
        type=float,
        default=CONTROL_TIMEOUT,
        metavar="SECONDS",
        help="longest wait for any one QMP or cloud-hypervisor API answer (default: %(default)s)",
    )
    parser.add_argument(
        "--serial-log-size",
        type=int,
        default=DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help="serial.log is rotated (to serial.log.1) past this size while the VM runs "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--ch-binary",
        default=locations.default_ch_binary(),
        help=f"cloud-hypervisor binary (default: from PATH, else {locations.CLOUD_HYPERVISOR})",
    )
    parser.add_argument(
        "--ch-firmware",
        default=DEFAULT_FIRMWARE,
        help="cloud-hypervisor firmware for disk boot (default: %(default)s)",
    )
    parser.add_argument(
        "--kvm-device",
        default=locations.KVM_DEVICE,
        help="the KVM device cloud-hypervisor needs (default: %(default)s)",
    )


async def choose_backend(options: argparse.Namespace) -> str:
    """``qemu`` or ``cloud-hypervisor`` for ``--hypervisor auto``.

    cloud-hypervisor needs KVM, which only a QEMU probe can show works. Where
    cloud-hypervisor is the only hypervisor (the node image), it is chosen without a probe:
    StartVm then says what is missing if KVM is absent. Where neither is installed the
    daemon still serves (VMs can be created and listed) and StartVm names the missing binary.
    """
    has_ch = shutil.which(options.ch_binary) is not None
    has_qemu = shutil.which(options.qemu_binary) is not None
    if has_ch and has_qemu:
        return "cloud-hypervisor" if await kvm_works(options.qemu_binary) else "qemu"
    return "qemu" if has_qemu else "cloud-hypervisor"


async def choose_hypervisor(options: argparse.Namespace) -> Hypervisor:
    """The backend the options ask for (``auto``: see :func:`choose_backend`)."""
    choice = options.hypervisor
    if choice == "auto":
        choice = await choose_backend(options)
    if choice == "cloud-hypervisor":
        if shutil.which(options.ch_binary) is None:
            log.warning(
                "cloud-hypervisor binary %r not found: VMs can be created, but StartVm fails "
                "until it is installed",
                options.ch_binary,
            )
        return CloudHypervisor(
            options.ch_binary, options.ch_firmware, options.kvm_device, options.control_timeout
        )
    if shutil.which(options.qemu_binary) is None:
        log.warning(
            "QEMU binary %r not found: VMs can be created, but StartVm fails until it is installed",
            options.qemu_binary,
        )
    accel = None if options.accel == "auto" else options.accel
    return QemuHypervisor(
        options.qemu_binary, accel, options.ovmf_code, options.ovmf_vars, options.control_timeout
    )


def make_private(data_dir: Path) -> None:
    """The data dir holds guests' disks' contents in flight, consoles, cloud-init secrets and
    control sockets: only the daemon's user may enter it. Everything created from now on is
    private (umask 077, inherited by the hypervisors: serial.log, sockets), and what an
    earlier version left readable is made private now (folders 0700, files 0600)."""
    os.umask(0o077)
    data_dir.chmod(0o700)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):
                mode = os.lstat(path).st_mode
                if stat.S_ISDIR(mode):
                    os.chmod(path, 0o700)
                elif stat.S_ISREG(mode):
                    os.chmod(path, 0o600)


def all_backends(options: argparse.Namespace) -> dict[str, Hypervisor]:
    """Every backend by name, configured from the options: VMs keep the backend they were
    started with, even after a restart with another ``--hypervisor``."""
    accel = None if options.accel == "auto" else options.accel
    backends: list[Hypervisor] = [
        QemuHypervisor(
            options.qemu_binary,
            accel,
            options.ovmf_code,
            options.ovmf_vars,
            options.control_timeout,
        ),
        CloudHypervisor(
            options.ch_binary, options.ch_firmware, options.kvm_device, options.control_timeout
        ),
    ]
    return {backend.name: backend for backend in backends}


async def create(ctx: DaemonContext) -> Service:
    """Open the store, re-adopt running VMs, and hand the servicer to the bootstrap."""
    # qemu.qmp narrates every connection at INFO; its warnings and errors are what matter.
    logging.getLogger("qemu.qmp").setLevel(max(logging.WARNING, ctx.logger.getEffectiveLevel()))
    make_private(ctx.data_dir)
    hypervisor = await choose_hypervisor(ctx.options)
    manager = VmManager(
        ctx.data_dir,
        hypervisor,
        ctx.audit,
        backends=all_backends(ctx.options),
        image_roots=ctx.options.image_roots or DEFAULT_IMAGE_ROOTS,
        serial_log_size=ctx.options.serial_log_size,
    )
    await manager.recover()
    ctx.logger.info("hypervisor backend: %s", hypervisor.name)
    servicer = VmServicer(manager, ctx.stopping)

    def register(server: grpc.aio.Server) -> None:
        vmm_pb2_grpc.add_VmServiceServicer_to_server(servicer, server)

    return Service(names=[SERVICE_NAME], register=register, close=manager.close)


SPEC = DaemonSpec(
    component="vmm",
    default_port=DEFAULT_PORT,
    description="mvirt-vmm: VM lifecycle on QEMU or cloud-hypervisor",
    create=create,
    add_arguments=add_arguments,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``mvirt-vmm``."""
    run(SPEC, argv)
