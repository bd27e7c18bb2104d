"""``mvirt``: the command group. Commands are loaded when used (the table below names the
module of each), so ``mvirt list`` imports only what listing needs; a command family may also
be added with ``cli.add_command``.

:func:`main` is the one place errors leave the program: one line on stderr and an exit code
from :mod:`mvirt.cli.exit_codes`, never a traceback (``MVIRT_DEBUG=1`` shows it for a fault).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from mvirt.cli.exit_codes import ExitCode
from mvirt.cli.options import deadline_option, group_endpoint_options, tls_options

LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("mvirt.cli.vm", "create"),
    "list": ("mvirt.cli.vm", "list_vms"),
    "get": ("mvirt.cli.vm", "get"),
    "delete": ("mvirt.cli.vm", "delete"),
    "start": ("mvirt.cli.vm", "start"),
    "stop": ("mvirt.cli.vm", "stop"),
    "kill": ("mvirt.cli.vm", "kill"),
    "console": ("mvirt.cli.vm", "console_cmd"),
    "system": ("mvirt.cli.vm", "system"),
    "logs": ("mvirt.cli.logs", "logs"),
    "pool": ("mvirt.cli.storage", "pool"),
    "volume": ("mvirt.cli.storage", "volume"),
    "snapshot": ("mvirt.cli.storage", "snapshot"),
    "template": ("mvirt.cli.storage", "template"),
    "import": ("mvirt.cli.storage", "import_template"),
    "imports": ("mvirt.cli.storage", "imports"),
    "network": ("mvirt.cli.net", "network"),
    "nic": ("mvirt.cli.net", "nic"),
    "completion": ("mvirt.cli.completion", "completion"),
    "tui": ("mvirt.cli.tui.command", "tui"),
}
"""Command name -> (module, attribute)."""


class LazyGroup(click.Group):
    """A group that imports a command's module only when the command is used or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in LAZY_COMMANDS:
            return None
        module, attribute = LAZY_COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="mvirt", prog_name="mvirt")
@tls_options(with_env=True)
@group_endpoint_options()
@deadline_option()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Manage mvirt VMs, storage and networks, and read the audit log. With no command:
    the TUI.

    Daemons on this machine are reached over loopback; a node elsewhere over mutual TLS
    with --tls DIR (client.crt and client.key from `mvirt-build genkey`). Defaults for every
    option may be set in ~/.config/mvirt/config.toml (see docs/cli.md).
    """
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        tui = cli.get_command(ctx, "tui")
        assert tui is not None
        ctx.invoke(tui)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs ``cli`` and turns every way out into an exit code."""
    try:
        code = cli.main(args=argv, prog_name="mvirt", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("mvirt: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`mvirt list | head -1`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = ExitCode.OK
    except Exception as exc:
        if os.environ.get("MVIRT_DEBUG"):
            raise
        click.echo(
            f"mvirt: internal error: {type(exc).__name__}: {exc} (a fault in mvirt; "
            "MVIRT_DEBUG=1 shows the traceback)",
            err=True,
        )
        code = ExitCode.INTERNAL
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
