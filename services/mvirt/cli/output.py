"""Output shared by CLI commands: rich tables for people, JSON for programs.

Text from a daemon is data, never terminal control: every string printed here has its control
characters (C0, DEL, C1) and bidirectional overrides shown as escapes (``\\x1b``), so a VM or
log message carrying an escape sequence cannot retitle, recolour or rewrite the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import click

from mvirt.cli.options import FORMATS, Decorator, output_option

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "FORMATS",
    "Decorator",
    "console",
    "output_option",
    "print_columns",
    "print_json_line",
    "print_table",
    "safe",
]

_BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
_UNSAFE = (*range(0x00, 0x20), *range(0x7F, 0xA0), *_BIDI)
_SAFE_TEXT = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE}
_SAFE_JSON = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), *_BIDI)}


def safe(text: str) -> str:
    """``text`` with terminal control characters shown as escapes (``\\x1b``)."""
    return text.translate(_SAFE_TEXT)


@cache
def _safe_console_class() -> type[Console]:
    from rich.console import Console  # noqa: PLC0415 - rich loads only when printing with it

    class SafeConsole(Console):
        """A rich console that prints strings through :func:`safe` (markup still applies)."""

        def print(self, *objects: Any, **kwargs: Any) -> None:
            super().print(*(safe(o) if isinstance(o, str) else o for o in objects), **kwargs)

    return SafeConsole


def console() -> Console:
    """The console commands print to (stdout; no colour when it is not a terminal); strings
    it prints go through :func:`safe`."""
    return _safe_console_class()(highlight=False, soft_wrap=False)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Prints ``rows`` as one rich table (cells may hold rich markup)."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*(safe(cell) for cell in row))
    console().print(table)


def print_columns(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Prints plain cells (no markup) in aligned columns, header bold on a terminal.

    For long listings: as fast for 1,000 rows as for 10 (a rich table measures every cell
    several times), and nothing is ever shortened or wrapped, so ids can be copied."""
    cells = [[safe(cell) for cell in row] for row in rows]
    widths = [_width(column) for column in columns]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _width(cell))

    def line(row: Sequence[str]) -> str:
        padded = (
            cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
        )
        return "  ".join(padded).rstrip()

    header = line(columns)
    if sys.stdout.isatty():
        header = f"\x1b[1m{header}\x1b[0m"
    click.echo("\n".join([header, *(line(row) for row in cells)]))


def _width(cell: str) -> int:
    """Terminal cells ``cell`` takes. After :func:`safe`, an ASCII string is printable, one
    cell per character (the common case, and no table of character widths to load); wide
    characters (CJK, emoji) take two cells."""
    if cell.isascii():
        return len(cell)
    from rich.cells import cell_len  # noqa: PLC0415 - only text beyond ASCII needs its table

    return cell_len(cell)


def print_json_line(obj: dict[str, Any]) -> None:
    """Prints ``obj`` as one JSON line and flushes (so a follow stream is read line by line).

    JSON escapes C0 controls itself; DEL, C1 and bidirectional overrides are escaped too, so
    the line is safe on a terminal and still decodes to the same strings."""
    import json  # noqa: PLC0415 - only -o json needs it

    click.echo(json.dumps(obj, ensure_ascii=False).translate(_SAFE_JSON))
