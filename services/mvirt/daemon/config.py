"""Command-line options shared by every daemon, parsed once into a typed config."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mvirt.daemon.endpoint import grpc_target

LOG_SERVICE_PORT = 50052


@dataclass(frozen=True)
class DaemonConfig:
    """Where a daemon listens, keeps its state and sends its audit entries."""

    component: str
    listen: str
    data_dir: Path
    log_endpoint: str | None
    log_level: str
    log_format: str
    shutdown_grace: float
    options: argparse.Namespace
    """Daemon-specific options added by the daemon's own ``add_arguments``."""


def build_parser(
    component: str,
    default_port: int,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """The argument parser of ``mvirt-<component>``: shared flags plus the daemon's own."""
    parser = argparse.ArgumentParser(prog=f"mvirt-{component}", description=description)
    parser.add_argument(
        "--listen",
        default=f"[::1]:{default_port}",
        help="address to serve gRPC on, host:port (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(f"/var/lib/mvirt/{component}"),
        help="directory for this daemon's state (created if missing; default: %(default)s)",
    )
    default_log = None if component == "log" else f"[::1]:{LOG_SERVICE_PORT}"
    parser.add_argument(
        "--log-endpoint",
        default=default_log,
        help="mvirt-log address for audit entries; '' disables sending "
        f"(default: {default_log or 'disabled'})",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format", default="json", choices=["json", "text"], help="local log format"
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=10.0,
        help="seconds in-flight calls get to finish on SIGTERM (default: %(default)s)",
    )
    if add_arguments is not None:
        add_arguments(parser)
    return parser


def parse_config(
    parser: argparse.ArgumentParser, component: str, argv: Sequence[str] | None
) -> DaemonConfig:
    """Parses ``argv`` into a :class:`DaemonConfig`; bad values exit with a usage error."""
    args = parser.parse_args(argv)
    try:
        listen = grpc_target(args.listen)
        log_endpoint = grpc_target(args.log_endpoint) if args.log_endpoint else None
    except ValueError as exc:
        parser.error(str(exc))
    return DaemonConfig(
        component=component,
        listen=listen,
        data_dir=args.data_dir,
        log_endpoint=log_endpoint,
        log_level=args.log_level,
        log_format=args.log_format,
        shutdown_grace=args.shutdown_grace,
        options=args,
    )
