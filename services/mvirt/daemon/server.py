"""The one server bootstrap every mvirt daemon runs on.

A daemon describes itself with a :class:`DaemonSpec` (name, default port, a ``create``
callback that opens its stores and returns the servicers to register) and calls
:func:`run`. The bootstrap parses the shared flags, sets up structured logging, checks the
data dir, starts the audit client, serves gRPC (plus health checking and reflection), and on
SIGTERM/SIGINT stops taking calls, lets in-flight calls finish, and closes everything.
Start-up problems end the process with one readable line and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from mvirt.daemon.audit import AuditLogger
from mvirt.daemon.config import DaemonConfig, build_parser, parse_config
from mvirt.daemon.errors import ErrorMappingInterceptor, MvirtError
from mvirt.daemon.structured_log import configure_logging

if TYPE_CHECKING:
    from mvirt.daemon.tls import ServerIdentity

EXIT_STARTUP_FAILED = 1
LOCK_FILE = "daemon.lock"


class StartupError(Exception):
    """A problem that keeps the daemon from starting; the message says what to do."""


@dataclass
class Service:
    """What a daemon's ``create`` callback returns: its servicers and how to close them."""

    names: Sequence[str]
    """Full gRPC service names (e.g. ``mvirt.log.LogService``) for health and reflection."""
    register: Callable[[grpc.aio.Server], None]
    """Adds the servicers to the server (the generated ``add_*_to_server`` calls)."""
    close: Callable[[], Awaitable[None]] | None = None
    """Closes stores and backends after the last call has finished."""


@dataclass
class DaemonContext:
    """What the bootstrap hands to a daemon's ``create`` callback."""

    config: DaemonConfig
    audit: AuditLogger
    logger: logging.Logger
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when shutdown begins: long-running streams (follow, watch) should end."""

    @property
    def data_dir(self) -> Path:
        """The daemon's state directory (exists and is writable)."""
        return self.config.data_dir

    @property
    def options(self) -> argparse.Namespace:
        """The daemon-specific command-line options."""
        return self.config.options


@dataclass(frozen=True)
class DaemonSpec:
    """Everything the bootstrap needs to know about one daemon."""

    component: str
    """Short name: the program is ``mvirt-<component>``, the log component is this."""
    default_port: int
    description: str
    create: Callable[[DaemonContext], Awaitable[Service]]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    server_options: Sequence[tuple[str, int]] = ()
    """Extra gRPC server options (e.g. ``grpc.max_receive_message_length``)."""
    maximum_concurrent_rpcs: int | None = None
    """Calls served at once; beyond it gRPC answers RESOURCE_EXHAUSTED (None: no limit)."""


def run(spec: DaemonSpec, argv: Sequence[str] | None = None) -> None:
    """Runs the daemon until SIGTERM/SIGINT; exits non-zero with one line if it cannot start."""
    parser = build_parser(spec.component, spec.default_port, spec.description, spec.add_arguments)
    config = parse_config(parser, spec.component, argv)
    configure_logging(config.log_level, config.log_format)
    # gRPC's C core prints a line for every failed TLS handshake: anyone who can reach the
    # TLS port could flood the log. Set GRPC_VERBOSITY=INFO to see them.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        asyncio.run(serve(spec, config))
    except (StartupError, MvirtError) as exc:
        print(f"mvirt-{spec.component}: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_STARTUP_FAILED)


def prepare_data_dir(path: Path) -> None:
    """Creates ``path`` if needed and proves it is writable, or raises StartupError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupError(
            f"data dir {path} is not usable ({reason}); pass --data-dir with a writable directory"
        ) from None


def lock_data_dir(path: Path, component: str) -> int:
    """Takes the data dir's lock (held until the process ends) and returns its descriptor, or
    raises StartupError naming the daemon that holds it: two daemons on one data dir would
    both adopt, kill and write the same VMs and files."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StartupError(
            f"data dir {path} is in use by another mvirt-{component} (pid {holder}); stop it "
            "or pass another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def check_listen_address(listen: str, flag: str = "--listen") -> None:
    """Binds ``listen`` once with a plain socket, so a taken port or a foreign address gives
    a precise one-line StartupError instead of gRPC's C-level log output."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on {listen}: {exc.strerror}; pass {flag} with a valid host:port"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As gRPC does: connections of a previous run in TIME_WAIT must not block a restart
        # (on Linux a port someone listens on still fails to bind).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {listen}: {exc.strerror}; stop the other process or pass "
                f"{flag} with a free host:port"
            ) from None


async def serve(spec: DaemonSpec, config: DaemonConfig) -> None:
    """Serves until a stop signal; raises StartupError for a start-up failure."""
    logger = logging.getLogger(f"mvirt.{spec.component}")
    prepare_data_dir(config.data_dir)
    lock = lock_data_dir(config.data_dir, spec.component)
    try:
        identity = load_tls_identity(spec.component, config)
        await _serve_locked(spec, config, logger, identity)
    finally:
        with contextlib.suppress(OSError):
            os.close(lock)


async def _serve_locked(
    spec: DaemonSpec,
    config: DaemonConfig,
    logger: logging.Logger,
    identity: ServerIdentity | None,
) -> None:
    audit = AuditLogger(spec.component, config.log_endpoint, config.data_dir)
    ctx = DaemonContext(config=config, audit=audit, logger=logger)
    try:
        await audit.start()
    except (OSError, sqlite3.Error) as exc:
        raise StartupError(f"cannot open the audit spool in {config.data_dir}: {exc}") from None
    try:
        try:
            service = await spec.create(ctx)
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(
                f"cannot open state in {config.data_dir}: {exc}; check the files there or "
                "start with an empty --data-dir"
            ) from None
        try:
            await _serve_until_stopped(spec, ctx, service, identity)
        finally:
            if service.close is not None:
                await service.close()
    finally:
        await audit.close()
    logger.info("stopped")


def load_tls_identity(component: str, config: DaemonConfig) -> ServerIdentity | None:
    """The node's API identity when ``--tls-listen`` is given (made on first use); prints
    its fingerprint, the one line a user compares with what a client sees."""
    if config.tls_listen is None:
        return None
    from mvirt.daemon.tls import (  # noqa: PLC0415 - only TLS daemons load cryptography
        TlsError,
        load_or_create_server_identity,
    )

    try:
        identity = load_or_create_server_identity(config.tls_dir)
    except TlsError as exc:
        raise StartupError(str(exc)) from None
    print(
        f"mvirt-{component}: API certificate fingerprint {identity.fingerprint}",
        file=sys.stderr,
        flush=True,
    )
    return identity


def _add_tls_port(server: grpc.aio.Server, config: DaemonConfig, identity: ServerIdentity) -> None:
    from mvirt.daemon.tls import (  # noqa: PLC0415 - only TLS daemons load cryptography
        TlsError,
        load_client_ca,
        server_credentials,
    )

    assert config.tls_listen is not None and config.tls_client_ca is not None
    try:
        credentials = server_credentials(identity, load_client_ca(config.tls_client_ca))
    except TlsError as exc:
        raise StartupError(str(exc)) from None
    check_listen_address(config.tls_listen, "--tls-listen")
    try:
        port = server.add_secure_port(config.tls_listen, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(
            f"cannot listen on {config.tls_listen}: the address is in use or not available "
            "here; stop the other process or pass --tls-listen with a free host:port"
        )


async def _serve_until_stopped(
    spec: DaemonSpec, ctx: DaemonContext, service: Service, identity: ServerIdentity | None
) -> None:
    config = ctx.config
    # Without this, gRPC sets SO_REUSEPORT and a second daemon would silently share the port.
    server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor()],
        options=[("grpc.so_reuseport", 0), *spec.server_options],
        maximum_concurrent_rpcs=spec.maximum_concurrent_rpcs,
    )
    service.register(server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [
            *service.names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    check_listen_address(config.listen)
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise StartupError(
            f"cannot listen on {config.listen}: the address is in use or not available here; "
            "stop the other process or pass --listen with a free host:port"
        )
    if identity is not None:
        _add_tls_port(server, config, identity)
    await server.start()
    for name in ("", *service.names):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ctx.logger.info(
        "serving",
        extra={
            "listen": config.listen,
            "tls_listen": config.tls_listen,
            "data_dir": str(config.data_dir),
            "pid": os.getpid(),
        },
    )
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    ctx.logger.info("stopping", extra={"grace_s": config.shutdown_grace})
    await health.enter_graceful_shutdown()
    ctx.stopping.set()
    await server.stop(config.shutdown_grace)
