"""mvirt-zfs's entry point: options, pool checks, backing detection, and wiring into the
shared bootstrap."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import grpc

from mvirt.daemon.server import DaemonContext, DaemonSpec, Service, StartupError, run
from mvirt.proto import zfs_pb2, zfs_pb2_grpc
from mvirt.zfs.backing import detect_backing
from mvirt.zfs.driver import ZfsDriver
from mvirt.zfs.imports import ImportRunner
from mvirt.zfs.manager import StorageManager
from mvirt.zfs.process import CommandError
from mvirt.zfs.servicer import ZfsServicer
from mvirt.zfs.store import ZfsStore
from mvirt.zfs.validation import NAME_PATTERN

DEFAULT_PORT = 50053
SERVICE_NAME = zfs_pb2.DESCRIPTOR.services_by_name["ZfsService"].full_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """mvirt-zfs's own options."""
    parser.add_argument("--pool", required=True, help="the (imported) ZFS pool to manage")
    parser.add_argument(
        "--mount-root",
        type=Path,
        default=None,
        help="where the pool's volumes, templates and tmp datasets are mounted "
        "(default: <data-dir>/mnt)",
    )
    parser.add_argument(
        "--backing",
        choices=("auto", "zvol", "file"),
        default="auto",
        help="volume backing; auto = zvols when the pool can make them, else a sparse raw "
        "file per volume dataset (zfs-fuse)",
    )
    parser.add_argument(
        "--import-root",
        type=Path,
        action="append",
        default=None,
        help="directory local imports may read from (repeatable; default: /)",
    )
    parser.add_argument("--zfs-binary", default="zfs")
    parser.add_argument("--zpool-binary", default="zpool")
    parser.add_argument("--qemu-img", default="qemu-img", help="converter for qcow2 imports")


async def create(ctx: DaemonContext) -> Service:
    """Check the pool, lay out its datasets, recover import jobs, serve."""
    options = ctx.options
    if NAME_PATTERN.fullmatch(options.pool) is None:
        raise StartupError(f"--pool {options.pool!r} is not a valid pool name")
    for flag, binary in (("--zfs-binary", options.zfs_binary), ("--qemu-img", options.qemu_img)):
        if shutil.which(binary) is None:
            raise StartupError(f"{binary!r} not found; install it or pass {flag}")
    mount_root = options.mount_root or ctx.data_dir / "mnt"
    driver = ZfsDriver(options.pool, mount_root.resolve(), options.zfs_binary, options.zpool_binary)
    try:
        await driver.check_pool()
        await driver.ensure_layout()
        backing = await detect_backing(driver, options.backing)
    except CommandError as exc:
        raise StartupError(
            f"pool {options.pool!r} is not usable: {exc.reason}; check `zpool list` (is the "
            "ZFS service, e.g. zfs-fuse, running and the pool imported?)"
        ) from None
    store = ZfsStore(ctx.data_dir / "zfs.db")
    manager = StorageManager(driver, backing, store, ctx.audit)
    roots = [r.resolve() for r in (options.import_root or [Path("/")])]
    imports = ImportRunner(manager, roots, options.qemu_img)
    await imports.recover()
    await manager.remove_orphans()
    ctx.logger.info("pool %s, volume backing: %s", options.pool, backing.kind)
    servicer = ZfsServicer(manager, imports)

    def register(server: grpc.aio.Server) -> None:
        zfs_pb2_grpc.add_ZfsServiceServicer_to_server(servicer, server)

    async def close() -> None:
        await imports.close()
        store.close()

    return Service(names=[SERVICE_NAME], register=register, close=close)


SPEC = DaemonSpec(
    component="zfs",
    default_port=DEFAULT_PORT,
    description="mvirt-zfs: templates, volumes and snapshots on a ZFS pool",
    create=create,
    add_arguments=add_arguments,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``mvirt-zfs``."""
    run(SPEC, argv)
