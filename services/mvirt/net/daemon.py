"""mvirt-net's entry point: options, the kernel data plane, start-up reconciliation, and
wiring into the shared bootstrap."""

from __future__ import annotations

import argparse
import os
import re
import resource
from collections.abc import Sequence

import grpc

from mvirt.daemon.errors import UnavailableError
from mvirt.daemon.server import DaemonContext, DaemonSpec, Service, StartupError, run
from mvirt.net.control import ControlPlane
from mvirt.net.kernel import KernelDataPlane
from mvirt.net.manager import NetManager
from mvirt.net.servicer import NetServicer
from mvirt.proto import net_pb2, net_pb2_grpc

DEFAULT_PORT = 50054
SERVICE_NAME = net_pb2.DESCRIPTOR.services_by_name["NetService"].full_name
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """mvirt-net's own options."""
    parser.add_argument(
        "--uplink",
        metavar="IFACE",
        default=None,
        help="interface public networks are masqueraded through (default: none, so public "
        "networks stay private)",
    )


async def create(ctx: DaemonContext) -> Service:
    """Open the store, reconcile the kernel with it, and hand the servicer to the bootstrap."""
    uplink = ctx.options.uplink
    if uplink is not None and not _IFNAME.match(uplink):
        raise StartupError(f"--uplink {uplink!r} is not an interface name")
    if os.geteuid() != 0:
        raise StartupError(
            "mvirt-net configures TAPs, routes and nftables and must run as root (or in a "
            "network namespace where it is root)"
        )
    # Three sockets per TAP (DHCPv4, DHCPv6, RA): the default soft limit of 1,024 open files
    # would end at a few hundred NICs.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    manager = NetManager(ctx.data_dir, KernelDataPlane(), ctx.audit, uplink)
    control = ControlPlane()
    manager.listeners.append(control)
    try:
        await manager.reconcile()
    except UnavailableError as exc:
        control.close()
        await manager.close()
        raise StartupError(f"cannot set up the data plane: {exc}") from None
    servicer = NetServicer(manager)

    def register(server: grpc.aio.Server) -> None:
        net_pb2_grpc.add_NetServiceServicer_to_server(servicer, server)

    async def close() -> None:
        control.close()
        await manager.close()

    return Service(names=[SERVICE_NAME], register=register, close=close)


SPEC = DaemonSpec(
    component="net",
    default_port=DEFAULT_PORT,
    description="mvirt-net: routed L3 networks, TAPs, DHCP and router advertisements",
    create=create,
    add_arguments=add_arguments,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``mvirt-net``."""
    run(SPEC, argv)
