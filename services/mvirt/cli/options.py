"""The options every command shares: daemon endpoints, TLS and the call deadline.

Endpoint and TLS options may be given before the command (``mvirt --tls keys/ list``) or
after it (``mvirt list --tls keys/``); after wins, then the environment, then the config file
(:mod:`mvirt.cli.settings`), then the default. Nothing here imports gRPC, so ``mvirt --help``
and shell completion of commands stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mvirt.cli.exit_codes import CliError, ExitCode
from mvirt.cli.settings import (
    DEADLINE_ENV,
    DEFAULT_DEADLINE,
    ENDPOINTS,
    OUTPUT_ENV,
    Config,
    Endpoint,
    load_config,
)

TLS_DIR_ENV = "MVIRT_TLS_DIR"
TLS_FINGERPRINT_ENV = "MVIRT_TLS_FINGERPRINT"
FORMATS = ("table", "json")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
"""What a click option factory returns."""


@dataclass
class ClientOptions:
    """What the command line says about reaching daemons, from the group and the command."""

    tls_dir: Path | None = None
    fingerprint: str | None = None
    deadline: float | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    config: Config | None = None

    def settings(self) -> Config:
        """The config file, read once per invocation."""
        if self.config is None:
            self.config = load_config()
        return self.config

    def resolved_tls_dir(self) -> Path | None:
        """``--tls`` (or its environment variable), else the config file's ``tls``."""
        return self.tls_dir if self.tls_dir is not None else self.settings().tls_dir

    def resolved_fingerprint(self) -> str | None:
        """``--tls-fingerprint`` (or its environment variable), else the config file's."""
        return self.fingerprint or self.settings().get("tls_fingerprint")

    def resolved_deadline(self) -> float:
        """Seconds each request/response call may take."""
        if self.deadline is not None:
            return self.deadline
        configured = self.settings().get("deadline")
        return float(configured) if configured is not None else DEFAULT_DEADLINE


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


def _set_deadline(options: ClientOptions, value: float) -> None:
    options.deadline = value


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


def deadline_option() -> Decorator:
    """``--deadline SECONDS`` for the group: how long any request/response call may take."""
    return click.option(
        "--deadline",
        metavar="SECONDS",
        type=click.FloatRange(min=0, min_open=True),
        envvar=DEADLINE_ENV,
        expose_value=False,
        callback=_store(_set_deadline),
        help=f"give up on a call after SECONDS (env {DEADLINE_ENV}; default "
        f"{DEFAULT_DEADLINE:g}; streams such as console and --follow are not limited)",
    )


def endpoint_option(flag: str, envvar: str, default: str, what: str) -> Decorator:
    """A ``--<service>-server`` option plus the TLS options; the command receives the value
    as ``server`` (None: see :func:`resolve_endpoint`). ``flag`` should be one of
    :data:`~mvirt.cli.settings.ENDPOINTS`; another is added to it."""
    ENDPOINTS.setdefault(flag, Endpoint(flag, envvar, default, what))

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


def daemon_option(flag: str) -> Decorator:
    """:func:`endpoint_option` for a daemon of the endpoint table."""
    endpoint = ENDPOINTS[flag]
    return endpoint_option(flag, endpoint.envvar, endpoint.default, endpoint.service)


def group_endpoint_options() -> Decorator:
    """The endpoint options of every daemon, for the command group."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for endpoint in reversed(ENDPOINTS.values()):  # click lists the last applied first

            def setter(options: ClientOptions, value: str, flag: str = endpoint.flag) -> None:
                options.endpoints[flag] = value

            func = click.option(
                endpoint.flag,
                metavar="ADDRESS",
                expose_value=False,
                callback=_store(setter),
                help=f"{endpoint.service} address for the commands that use it "
                f"(env {endpoint.envvar}; config {endpoint.key}; default {endpoint.default})",
            )(func)
        return func

    return decorate


def resolve_endpoint(value: str | None, flag: str) -> str:
    """The address for ``flag``: the command's option, the group's, the environment, the
    config file, the default, in that order."""
    if value:
        return value
    endpoint = ENDPOINTS[flag]
    options = client_options()
    given = options.endpoints.get(flag) or os.environ.get(endpoint.envvar)
    return given or options.settings().get(endpoint.key) or endpoint.default


def _default_output() -> str:
    try:
        configured = client_options().settings().get("output")
    except CliError:
        configured = None  # reported when a command needs the file
    return str(configured or "table")


def output_option() -> Decorator:
    """``-o/--output``: ``table`` (default) or ``json`` (one object per line); also from
    ``$MVIRT_OUTPUT`` or the config file's ``output``."""
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(FORMATS),
        envvar=OUTPUT_ENV,
        default=_default_output,
        help="table for reading, json for scripts (one JSON object per line); default table, "
        f"or env {OUTPUT_ENV}, or the config file's output",
    )


def usage_error(message: str) -> CliError:
    """A usage error that is not about one option (exit code 2)."""
    return CliError(message, ExitCode.USAGE)
