"""`mvirt-build`: the builder's command line."""

from __future__ import annotations

import logging

import click

from mvirt_build import release_cli


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Show the commands run.")
def main(verbose: bool) -> None:
    """Build the mvirt image: kernel, initramfs, UKI, ISO."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s")


release_cli.register(main)
