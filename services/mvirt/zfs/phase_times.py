"""Where an import job's time goes: consecutive named phases on one clock.

Every job keeps one :class:`PhaseTimes` from the moment its request was accepted; each step
calls :meth:`PhaseTimes.lap` when it ends, so the phases add up to the job's whole time and
nothing (a queue, a poll interval, a status write) hides between two measurements. The daemon
logs the phases when the job ends ("import job ended", field ``phases_ms``);
``benchmarks/zfs_bench.py`` reads them from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class PhaseTimes:
    """Durations of consecutive phases, measured from creation (see module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        """Ends ``phase`` now: the time since the previous lap (or creation) is added to it."""
        now = self._clock()
        self._phases[phase] = self._phases.get(phase, 0.0) + now - self._last
        self._last = now

    def total(self) -> float:
        """Seconds from creation to the last lap."""
        return self._last - self._start

    def as_ms(self) -> dict[str, float]:
        """The phases in the order they first ended, in milliseconds (0.1 ms precision)."""
        return {name: round(seconds * 1000, 1) for name, seconds in self._phases.items()}
