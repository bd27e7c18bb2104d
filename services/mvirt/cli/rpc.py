"""How CLI commands reach a daemon: endpoint flags, mutual TLS, channels, and gRPC errors
turned into one-line CLI errors (never a traceback).

Every daemon endpoint is declared with :func:`endpoint_option` and dialled with
:func:`connect`, so each one takes the same ``--tls DIR`` / ``--tls-fingerprint`` handling.
Endpoint and TLS options may be given before the command (``mvirt --tls keys/ list``) or
after it (``mvirt list --tls keys/``); after wins, then the environment, then the default.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import grpc

from mvirt.cli.known_hosts import KnownHosts, default_path
from mvirt.cli.output import Decorator
from mvirt.daemon.endpoint import grpc_target

TLS_DIR_ENV = "MVIRT_TLS_DIR"
TLS_FINGERPRINT_ENV = "MVIRT_TLS_FINGERPRINT"

_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is {service} running? (check the address with {flag})",
    grpc.StatusCode.DEADLINE_EXCEEDED: "{service} did not answer in time",
    grpc.StatusCode.UNIMPLEMENTED: "the server at this address is not {service}; check {flag}",
}


@dataclass(frozen=True)
class Endpoint:
    """A daemon endpoint flag: its environment variable, default and service name."""

    flag: str
    envvar: str
    default: str
    service: str


ENDPOINTS: dict[str, Endpoint] = {}
"""Every endpoint flag declared with :func:`endpoint_option`, by flag."""


@dataclass
class ClientOptions:
    """What the command line says about reaching daemons, from the group and the command."""

    tls_dir: Path | None = None
    fingerprint: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)


def client_options(ctx: click.Context | None = None) -> ClientOptions:
    """The options of this invocation (shared by the group and its command)."""
    ctx = ctx or click.get_current_context()
    options: ClientOptions = ctx.meta.setdefault("mvirt.cli.client", ClientOptions())
    return options


def _store(setter: Callable[[ClientOptions, Any], None]) -> Callable[..., None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            setter(client_options(ctx), value)

    return callback


def _set_tls_dir(options: ClientOptions, value: Path) -> None:
    options.tls_dir = value


def _set_fingerprint(options: ClientOptions, value: str) -> None:
    options.fingerprint = value


def tls_options(*, with_env: bool) -> Decorator:
    """``--tls DIR`` and ``--tls-fingerprint``; the group's read the environment too."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = click.option(
            "--tls-fingerprint",
            metavar="SHA256:HEX",
            envvar=TLS_FINGERPRINT_ENV if with_env else None,
            expose_value=False,
            callback=_store(_set_fingerprint),
            help="accept only the node certificate with this fingerprint (as the daemons "
            "print it at start) instead of trusting on first use"
            + (f" (env {TLS_FINGERPRINT_ENV})" if with_env else ""),
        )(func)
        return click.option(
            "--tls",
            metavar="DIR",
            type=click.Path(path_type=Path),
            envvar=TLS_DIR_ENV if with_env else None,
            expose_value=False,
            callback=_store(_set_tls_dir),
            help="reach the daemons over mutual TLS with DIR/client.crt and DIR/client.key; "
            "the node is pinned by fingerprint or trusted on first use and remembered in "
            "~/.config/mvirt/known_hosts" + (f" (env {TLS_DIR_ENV})" if with_env else ""),
        )(func)

    return decorate


def endpoint_option(flag: str, envvar: str, default: str, what: str) -> Decorator:
    """A ``--<service>-server`` option (also read from ``envvar``) plus the TLS options; the
    command receives the value as ``server`` (None: see :func:`connect`)."""
    ENDPOINTS[flag] = Endpoint(flag, envvar, default, what)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = tls_options(with_env=False)(func)
        return click.option(
            flag,
            "server",
            metavar="ADDRESS",
            help=f"{what} address: host:port, [ipv6]:port or http://host:port "
            f"(env {envvar}; default {default})",
        )(func)

    return decorate


def group_endpoint_options() -> Decorator:
    """The endpoint options of every declared endpoint, for the command group."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for endpoint in ENDPOINTS.values():

            def setter(options: ClientOptions, value: str, flag: str = endpoint.flag) -> None:
                options.endpoints[flag] = value

            func = click.option(
                endpoint.flag,
                metavar="ADDRESS",
                expose_value=False,
                callback=_store(setter),
                help=f"{endpoint.service} address for the commands that use it "
                f"(env {endpoint.envvar}; default {endpoint.default})",
            )(func)
        return func

    return decorate


def resolve_endpoint(value: str | None, flag: str) -> str:
    """The address for ``flag``: the command's option, the group's, the environment, the
    default, in that order."""
    if value:
        return value
    endpoint = ENDPOINTS[flag]
    given = client_options().endpoints.get(flag)
    return given or os.environ.get(endpoint.envvar) or endpoint.default


@contextlib.contextmanager
def connect(endpoint: str | None, flag: str, service: str) -> Iterator[grpc.Channel]:
    """A channel to ``service`` at ``endpoint`` (given by option ``flag``), over mutual TLS
    when ``--tls`` is given; gRPC and TLS errors inside the block become one-line click
    errors."""
    try:
        target = grpc_target(resolve_endpoint(endpoint, flag))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None
    options = client_options()
    if options.tls_dir is None and options.fingerprint is not None:
        raise click.BadParameter(
            "a fingerprint pins a TLS server: give --tls DIR too", param_hint="--tls-fingerprint"
        )
    if options.tls_dir is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = tls_channel(target, options, flag, service)
    with channel:
        try:
            yield channel
        except grpc.RpcError as exc:
            raise rpc_error(exc, target, flag, service) from None


def tls_channel(target: str, options: ClientOptions, flag: str, service: str) -> grpc.Channel:
    """A mutual-TLS channel whose server certificate is the pinned or known one, recording
    it on first use."""
    from mvirt.daemon import tls  # noqa: PLC0415 - loads cryptography; plaintext use skips it

    assert options.tls_dir is not None
    pin = options.fingerprint
    try:
        identity = tls.load_client_identity(options.tls_dir)
        if pin is not None:
            pin = tls.normalize_fingerprint(pin)
    except tls.TlsError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls-fingerprint") from None
    try:
        der = tls.fetch_server_certificate(target, identity)
    except tls.TlsError as exc:
        raise click.ClickException(str(exc)) from None
    except ssl.SSLError as exc:
        raise click.ClickException(
            f"UNAVAILABLE: no TLS handshake with {target} ({exc.reason or exc}); is this the "
            f"node's --tls-listen address? (check {flag})"
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"UNAVAILABLE: cannot reach {target} ({exc.strerror or exc}); is {service} "
            f"running? (check the address with {flag})"
        ) from None
    seen = tls.fingerprint(der)
    if pin is not None:
        if seen != pin:
            raise click.ClickException(
                f"{target} presents certificate {seen}, not {pin} given with "
                "--tls-fingerprint; refusing to connect"
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
        raise click.ClickException(
            f"cannot use {known_hosts.path} ({exc.strerror or exc}); fix it or pass "
            "--tls-fingerprint"
        ) from None
    if known.fingerprint != seen:
        raise click.ClickException(
            f"the certificate of {target} CHANGED: it presents {seen}, but {known_hosts.path} "
            f"line {known.line} records {known.fingerprint}. Someone may be intercepting the "
            f"connection. If the node was reinstalled, remove line {known.line} of "
            f"{known_hosts.path} and connect again"
        )


def rpc_error(exc: grpc.RpcError, target: str, flag: str, service: str) -> click.ClickException:
    """A one-line, actionable CLI error for a failed call."""
    code = exc.code()
    details = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"cannot reach {target}"
    hint = _HINTS.get(code)
    message = f"{code.name}: {details}"
    if hint:
        message = f"{message}; {hint.format(flag=flag, service=service)}"
    return click.ClickException(message)
