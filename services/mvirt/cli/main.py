"""``mvirt``: the command group. Each command family lives in its own module and is added
here with ``cli.add_command``."""

from __future__ import annotations

import click

from mvirt.cli.logs import logs
from mvirt.cli.net import COMMANDS as NET_COMMANDS
from mvirt.cli.vm import COMMANDS as VM_COMMANDS
from mvirt.daemon.version import package_version


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), prog_name="mvirt")
def cli() -> None:
    """Manage mvirt VMs, storage and networks, and read the audit log."""


cli.add_command(logs)
for command in (*VM_COMMANDS, *NET_COMMANDS):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli()
