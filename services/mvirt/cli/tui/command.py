"""``mvirt tui`` (also ``mvirt`` with no command)."""

from __future__ import annotations

import sys

import click

from mvirt.cli.options import usage_error


@click.command()
def tui() -> None:
    """Open the TUI: VMs, Storage, Network, Logs and System views (? lists the keys)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise usage_error("the TUI needs a terminal; in scripts use the commands (mvirt --help)")
    from mvirt.cli.tui.app import MvirtApp  # noqa: PLC0415 - textual loads only for the TUI
    from mvirt.cli.tui.daemons import link_daemons  # noqa: PLC0415

    MvirtApp(link_daemons()).run()
