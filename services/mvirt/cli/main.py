"""``mvirt``: the command group. Each command family lives in its own module and is added
here with ``cli.add_command``."""

from __future__ import annotations

import click

from mvirt.cli.logs import logs
from mvirt.cli.net import COMMANDS as NET_COMMANDS
from mvirt.cli.rpc import group_endpoint_options, tls_options
from mvirt.cli.storage import COMMANDS as STORAGE_COMMANDS
from mvirt.cli.vm import COMMANDS as VM_COMMANDS
from mvirt.daemon.version import package_version


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), prog_name="mvirt")
@tls_options(with_env=True)
@group_endpoint_options()
def cli() -> None:
    """Manage mvirt VMs, storage and networks, and read the audit log.

    Daemons on this machine are reached over loopback; a node elsewhere over mutual TLS
    with --tls DIR (client.crt and client.key from `mvirt-build genkey`).
    """


cli.add_command(logs)
for command in (*VM_COMMANDS, *STORAGE_COMMANDS, *NET_COMMANDS):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli()
