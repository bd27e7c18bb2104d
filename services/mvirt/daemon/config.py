"""Command-line options shared by every daemon, parsed once into a typed config."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mvirt.daemon.endpoint import grpc_target

LOG_SERVICE_PORT = 50052
DEFAULT_TLS_DIR = Path("/var/lib/mvirt/tls")


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
    tls_listen: str | None
    """Address of the mutual-TLS listener (None: loopback only)."""
    tls_client_ca: Path | None
    """CA that client certificates must be signed by (set when ``tls_listen`` is)."""
    tls_dir: Path
    """Where the node's API key and certificate live (shared by all its daemons)."""
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
        help="loopback address to serve plaintext gRPC on, host:port (default: %(default)s)",
    )
    parser.add_argument(
        "--tls-listen",
        metavar="HOST:PORT",
        help=f"also serve on this address (e.g. [::]:{default_port}) with mutual TLS; needs "
        "--tls-client-ca",
    )
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="FILE",
        help="PEM CA certificate that client certificates must be signed by",
    )
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=DEFAULT_TLS_DIR,
        metavar="DIR",
        help="the node's API key and certificate, made at first start when absent and shared "
        "by all daemons of the node (default: %(default)s)",
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
        tls_listen = grpc_target(args.tls_listen) if args.tls_listen else None
    except ValueError as exc:
        parser.error(str(exc))
    prog = parser.prog
    if not is_loopback(listen):
        # One line, no usage: this is a policy, not a typo.
        parser.exit(
            2,
            f"{prog}: error: --listen {listen} is not a loopback address; the plaintext "
            "listener stays on the node (e.g. [::1]:PORT): use --tls-listen with "
            "--tls-client-ca to serve other addresses with mutual TLS\n",
        )
    if tls_listen is not None and args.tls_client_ca is None:
        parser.exit(
            2,
            f"{prog}: error: --tls-listen needs --tls-client-ca FILE (the CA that signs client "
            "certificates; mvirt-build genkey writes keys/api-ca.crt)\n",
        )
    if tls_listen is None and args.tls_client_ca is not None:
        parser.exit(2, f"{prog}: error: --tls-client-ca is only used with --tls-listen\n")
    return DaemonConfig(
        component=component,
        listen=listen,
        data_dir=args.data_dir,
        log_endpoint=log_endpoint,
        log_level=args.log_level,
        log_format=args.log_format,
        shutdown_grace=args.shutdown_grace,
        tls_listen=tls_listen,
        tls_client_ca=args.tls_client_ca,
        tls_dir=args.tls_dir,
        options=args,
    )


def is_loopback(target: str) -> bool:
    """True for ``localhost:port`` and loopback IPs (``127.0.0.0/8``, ``[::1]``)."""
    host = target.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve anywhere
