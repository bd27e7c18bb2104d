"""How CLI commands reach a daemon: channels with a deadline on every call, mutual TLS, and
gRPC errors turned into one-line CLI errors with the exit code of their kind (never a
traceback).

Every daemon endpoint is declared in :mod:`mvirt.cli.settings` and dialled with
:func:`connect`, so each one takes the same ``--tls DIR`` / ``--tls-fingerprint`` handling.
The options themselves live in :mod:`mvirt.cli.options`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import click
import grpc

from mvirt.cli.exit_codes import CliError, ExitCode
from mvirt.cli.known_hosts import KnownHosts, default_path
from mvirt.cli.options import (
    TLS_DIR_ENV,
    TLS_FINGERPRINT_ENV,
    ClientOptions,
    client_options,
    daemon_option,
    endpoint_option,
    group_endpoint_options,
    resolve_endpoint,
    tls_options,
)
from mvirt.cli.output import safe
from mvirt.daemon.endpoint import grpc_target

__all__ = [
    "TLS_DIR_ENV",
    "TLS_FINGERPRINT_ENV",
    "ClientOptions",
    "client_options",
    "connect",
    "daemon_option",
    "endpoint_option",
    "group_endpoint_options",
    "open_channel",
    "resolve_endpoint",
    "rpc_error",
    "tls_options",
]

_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is {service} running? (check the address with {flag})",
    grpc.StatusCode.DEADLINE_EXCEEDED: "{service} did not answer in time (--deadline)",
    grpc.StatusCode.UNIMPLEMENTED: "the server at this address is not {service}; check {flag}",
}
_EXIT_CODES = {
    grpc.StatusCode.NOT_FOUND: ExitCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ExitCode.ALREADY_EXISTS,
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.UNIMPLEMENTED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED: ExitCode.INTERRUPTED,
}


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Gives every request/response call without its own timeout ``seconds`` to finish."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        if details.timeout is None:
            details = _CallDetails(
                details.method,
                self.seconds,
                details.metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            )
        return continuation(details, request)


def open_channel(endpoint: str | None, flag: str, service: str) -> tuple[str, grpc.Channel]:
    """The ``host:port`` of ``service`` (option ``flag``) and a channel to it, over mutual TLS
    when ``--tls`` (or the config file's ``tls``) is given, with the deadline on every
    request/response call. Needs the click context; the channel may outlive it."""
    try:
        target = grpc_target(resolve_endpoint(endpoint, flag))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None
    options = client_options()
    tls_dir = options.resolved_tls_dir()
    if tls_dir is None and options.resolved_fingerprint() is not None:
        raise click.BadParameter(
            "a fingerprint pins a TLS server: give --tls DIR too", param_hint="--tls-fingerprint"
        )
    if tls_dir is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = tls_channel(target, options, flag, service)
    deadline = DeadlineInterceptor(options.resolved_deadline())
    return target, grpc.intercept_channel(channel, deadline)  # closing it closes `channel`


@contextlib.contextmanager
def connect(endpoint: str | None, flag: str, service: str) -> Iterator[grpc.Channel]:
    """A channel as :func:`open_channel` makes it, closed at the end of the block; gRPC and
    TLS errors inside the block become one-line errors with the exit code of their kind."""
    target, channel = open_channel(endpoint, flag, service)
    with channel:
        try:
            yield channel
        except grpc.RpcError as exc:
            raise rpc_error(exc, target, flag, service) from None


def _unavailable(message: str) -> CliError:
    return CliError(f"UNAVAILABLE: {message}", ExitCode.UNAVAILABLE)


def tls_channel(target: str, options: ClientOptions, flag: str, service: str) -> grpc.Channel:
    """A mutual-TLS channel whose server certificate is the pinned or known one, recording
    it on first use."""
    import ssl  # noqa: PLC0415 - only TLS needs it

    from mvirt.daemon import tls  # noqa: PLC0415 - loads cryptography; plaintext use skips it

    tls_dir = options.resolved_tls_dir()
    assert tls_dir is not None
    pin = options.resolved_fingerprint()
    try:
        identity = tls.load_client_identity(tls_dir)
        if pin is not None:
            pin = tls.normalize_fingerprint(pin)
    except tls.TlsError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls-fingerprint") from None
    try:
        der = tls.fetch_server_certificate(target, identity)
    except tls.ServerRefusedError as exc:
        raise CliError(str(exc), ExitCode.UNTRUSTED) from None
    except tls.TlsError as exc:
        raise CliError(str(exc)) from None
    except ssl.SSLError as exc:
        raise _unavailable(
            f"no TLS handshake with {target} ({exc.reason or exc}); is this the "
            f"node's --tls-listen address? (check {flag})"
        ) from None
    except OSError as exc:
        raise _unavailable(
            f"cannot reach {target} ({exc.strerror or exc}); is {service} "
            f"running? (check the address with {flag})"
        ) from None
    seen = tls.fingerprint(der)
    if pin is not None:
        if seen != pin:
            raise CliError(
                f"{target} presents certificate {seen}, not {pin} given with "
                "--tls-fingerprint; refusing to connect",
                ExitCode.UNTRUSTED,
            )
    else:
        _check_known_host(target, seen)
    return tls.pinned_channel(target, identity, der)


def _check_known_host(target: str, seen: str) -> None:
    known_hosts = KnownHosts(default_path())
    try:
        known = known_hosts.lookup(target)
        if known is None:
            known_hosts.add(target, seen)
            click.echo(
                f"mvirt: trusting {target} on first use: certificate {seen}; recorded in "
                f"{known_hosts.path} (compare it with the fingerprint the node printed)",
                err=True,
            )
            return
    except OSError as exc:
        raise CliError(
            f"cannot use {known_hosts.path} ({exc.strerror or exc}); fix it or pass "
            "--tls-fingerprint",
            ExitCode.USAGE,
        ) from None
    if known.fingerprint != seen:
        raise CliError(
            f"the certificate of {target} CHANGED: it presents {seen}, but {known_hosts.path} "
            f"line {known.line} records {known.fingerprint}. Someone may be intercepting the "
            f"connection. If the node was reinstalled, remove line {known.line} of "
            f"{known_hosts.path} and connect again",
            ExitCode.UNTRUSTED,
        )


def rpc_error(exc: grpc.RpcError, target: str, flag: str, service: str) -> CliError:
    """A one-line, actionable CLI error for a failed call, with the exit code of its kind."""
    code = exc.code()
    details = safe(exc.details() or code.name)
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"cannot reach {target}"
    hint = _HINTS.get(code)
    message = f"{code.name}: {details}"
    if hint:
        message = f"{message}; {hint.format(flag=flag, service=service)}"
    return CliError(message, _EXIT_CODES.get(code, ExitCode.FAILED))
