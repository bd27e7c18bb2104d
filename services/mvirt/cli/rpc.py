"""How CLI commands reach a daemon: endpoint flags, channels, and gRPC errors turned into
one-line CLI errors (never a traceback)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click
import grpc

from mvirt.cli.output import Decorator
from mvirt.daemon.endpoint import grpc_target

_HINTS = {
    grpc.StatusCode.UNAVAILABLE: "is {service} running? (check the address with {flag})",
    grpc.StatusCode.DEADLINE_EXCEEDED: "{service} did not answer in time",
    grpc.StatusCode.UNIMPLEMENTED: "the server at this address is not {service}; check {flag}",
}


def endpoint_option(flag: str, envvar: str, default: str, what: str) -> Decorator:
    """A ``--<service>-server`` option (also read from ``envvar``)."""
    return click.option(
        flag,
        "server",
        envvar=envvar,
        default=default,
        show_default=True,
        help=f"{what} address: host:port, [ipv6]:port or http://host:port (env {envvar})",
    )


@contextlib.contextmanager
def connect(endpoint: str, flag: str, service: str) -> Iterator[grpc.Channel]:
    """A channel to ``service`` at ``endpoint`` (given by option ``flag``); gRPC errors
    inside the block become one-line click errors."""
    try:
        target = grpc_target(endpoint)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None
    with grpc.insecure_channel(target) as channel:
        try:
            yield channel
        except grpc.RpcError as exc:
            raise rpc_error(exc, target, flag, service) from None


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
