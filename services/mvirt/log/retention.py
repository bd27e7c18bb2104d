"""Background retention: deletes the entries that arrived first, beyond a maximum age (since
arrival) and/or size (database pages in use plus the write-ahead log).

Deletion runs in chunks on the store's writer thread, between group commits, so ingest keeps
flowing while old data goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass

from mvirt.log.store import LogStore

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_SIZE = re.compile(r"^(\d+)([KMGT]i?B?|B)?$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``text`` like ``90s``, ``30m``, ``12h``, ``30d``, ``2w``."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h, d or w (e.g. 30d)")
    return int(match[1]) * _SECONDS[match[2]]


def parse_size(text: str) -> int:
    """Bytes in ``text`` like ``500M``, ``2GiB``, ``1048576``."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(f"invalid size {text!r}: use a number with optional K, M, G or T")
    unit = (match[2] or "B")[0].upper()
    return int(match[1]) * {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]


@dataclass(frozen=True)
class RetentionPolicy:
    """Limits on stored entries; None means unlimited."""

    max_age_s: float | None = None
    max_bytes: int | None = None
    interval_s: float = 60.0


async def enforce_once(store: LogStore, policy: RetentionPolicy) -> int:
    """Deletes what the policy no longer allows; returns the number of entries deleted.

    Age is counted from when an entry arrived, not from its (client-given) timestamp. Size
    counts the write-ahead log too: it is checkpointed and truncated before measuring, so
    rows already deleted are not counted twice."""
    deleted = 0
    if policy.max_age_s is not None:
        cutoff = time.time_ns() - int(policy.max_age_s * 1e9)
        while n := await store.delete_oldest(arrived_before_ns=cutoff):
            deleted += n
    if policy.max_bytes is not None:
        await store.checkpoint()
        while await store.used_bytes() > policy.max_bytes:
            n = await store.delete_oldest()
            if n == 0:
                break
            deleted += n
            await store.checkpoint()
    return deleted


async def run_retention(
    store: LogStore, policy: RetentionPolicy, stopping: asyncio.Event, logger: logging.Logger
) -> None:
    """Enforces ``policy`` every ``interval_s`` until ``stopping`` is set."""
    while not stopping.is_set():
        deleted = await enforce_once(store, policy)
        if deleted:
            logger.info("retention deleted entries", extra={"deleted": deleted})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), policy.interval_s)
