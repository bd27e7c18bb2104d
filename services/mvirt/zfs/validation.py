"""Checks of request values; each failure is INVALID_ARGUMENT naming the field and the rule."""

from __future__ import annotations

import re

from mvirt.daemon.errors import InvalidArgumentError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
NAME_RULE = (
    "use 1-64 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or "
    "digit (no '/', '@', spaces or control characters)"
)
DEFAULT_BLOCKSIZE = 16 * 1024
MIN_BLOCKSIZE = 512
MAX_BLOCKSIZE = 128 * 1024
MAX_SIZE = 1 << 50  # 1 PiB: more is a typo, not a disk
KIB = 1024


def check_name(value: str, field: str) -> str:
    """``value`` if it is a usable volume, snapshot or template name."""
    if NAME_PATTERN.fullmatch(value) is None:
        shown = value if len(value) <= 80 else value[:80] + "..."
        raise InvalidArgumentError(f"{field} {shown!r} is not a valid name: {NAME_RULE}")
    return value


def check_blocksize(value: int, field: str = "volblocksize") -> int:
    """A power of two from 512 bytes to 128 KiB."""
    if value < MIN_BLOCKSIZE or value > MAX_BLOCKSIZE or value & (value - 1):
        raise InvalidArgumentError(
            f"{field} {value} is not valid: use a power of two from {MIN_BLOCKSIZE} to "
            f"{MAX_BLOCKSIZE} bytes (default {DEFAULT_BLOCKSIZE})"
        )
    return value


def check_size(value: int, field: str, blocksize: int) -> int:
    """A size above 0, at most 1 PiB, and a multiple of ``blocksize``."""
    if value == 0:
        raise InvalidArgumentError(f"{field} is required and must be greater than 0")
    if value > MAX_SIZE:
        raise InvalidArgumentError(f"{field} {value} is larger than the limit of 1 PiB")
    if value % blocksize:
        rounded = (value // blocksize + 1) * blocksize
        raise InvalidArgumentError(
            f"{field} {value} is not a multiple of the volblocksize {blocksize}; "
            f"use for example {rounded}"
        )
    return value


def round_up(value: int, blocksize: int) -> int:
    """``value`` rounded up to a multiple of ``blocksize``."""
    return -(-value // blocksize) * blocksize
