"""ULID-style identifiers: 26 Crockford base32 characters, sorting by creation time.

48 bits of milliseconds since the epoch followed by 80 random bits. Within one millisecond the
random part is incremented, so ids made by one process are strictly increasing.
"""

from __future__ import annotations

import os
import re
import threading
import time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_PATTERN = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_RANDOM_MAX = (1 << 80) - 1


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class UlidGenerator:
    """Thread-safe, per-process monotonic ULID source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def new(self, timestamp_ns: int | None = None) -> str:
        """A new id for ``timestamp_ns`` (default: now), greater than every earlier one."""
        ms = (time.time_ns() if timestamp_ns is None else timestamp_ns) // 1_000_000
        with self._lock:
            if ms <= self._last_ms:
                # Same (or an earlier, e.g. clock stepped back) millisecond: keep order by
                # continuing from the last id instead of drawing fresh randomness.
                ms = self._last_ms
                random_part = self._last_random + 1
                if random_part > _RANDOM_MAX:
                    ms += 1
                    random_part = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                random_part = int.from_bytes(os.urandom(10), "big") >> 1
            self._last_ms, self._last_random = ms, random_part
        return _encode((ms << 80) | random_part)


_default = UlidGenerator()


def new_ulid(timestamp_ns: int | None = None) -> str:
    """A new time-sortable id from the process-wide generator."""
    return _default.new(timestamp_ns)


def is_ulid(value: str) -> bool:
    """Whether ``value`` is a well-formed ULID (upper-case Crockford base32, 26 chars)."""
    return ULID_PATTERN.match(value) is not None
