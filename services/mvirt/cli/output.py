"""Output shared by CLI commands: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
"""What a click option factory returns."""


def output_option() -> Decorator:
    """The ``-o/--output`` option: ``table`` (default) or ``json`` (one object per line)."""
    return click.option(
        "-o",
        "--output",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for reading, json for scripts (one JSON object per line)",
    )


def console() -> Console:
    """The console commands print to (stdout; no colour when it is not a terminal)."""
    return Console(highlight=False, soft_wrap=False)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Prints ``rows`` as one rich table."""
    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def print_json_line(obj: dict[str, Any]) -> None:
    """Prints ``obj`` as one JSON line and flushes (so a follow stream is read line by line)."""
    click.echo(json.dumps(obj, ensure_ascii=False))
