"""A single-threaded event loop on epoll with timers: everything in PID 1 runs on it.

asyncio would do, but importing it costs a noticeable share of the boot under emulation; the
loop needs readers, writers (a non-blocking connect finishing), timers and nothing else. A
callback that raises is logged and the loop goes on: one faulty component must not take PID 1
down.
"""

from __future__ import annotations

import heapq
import select
import time

from mvirt.pideisn.console import log

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Timer:
    """A scheduled callback; `cancel()` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run this timer."""
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return self.when < other.when


class Loop:
    """Readers and writers on file descriptors plus timers on a monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._epoll = select.epoll()
        self._readers: dict[int, Callable[[], None]] = {}
        self._timers: list[Timer] = []

    def close(self) -> None:
        """Release the epoll descriptor."""
        self._epoll.close()

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` whenever `fd` is readable."""
        self._watch(fd, select.EPOLLIN, callback)

    def add_writer(self, fd: int, callback: Callable[[], None]) -> None:
        """Call `callback` whenever `fd` is writable or has failed (a non-blocking connect
        has an outcome); `remove_reader` ends it like a reader."""
        self._watch(fd, select.EPOLLOUT, callback)

    def _watch(self, fd: int, events: int, callback: Callable[[], None]) -> None:
        if fd in self._readers:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
        self._readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        """Stop watching `fd` (a closed descriptor is fine)."""
        if self._readers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once at monotonic time `when`."""
        timer = Timer(when, callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once after `delay` seconds."""
        return self.call_at(self.clock() + delay, callback)

    def next_deadline(self) -> float | None:
        """When the earliest live timer is due, or None."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].when if self._timers else None

    def fire_due(self) -> int:
        """Run every timer that is due now; returns how many ran."""
        now = self.clock()
        ran = 0
        while self._timers and self._timers[0].when <= now:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                ran += 1
                _guarded(timer.callback)
        return ran

    def run_once(self, max_wait: float = 3600.0) -> int:
        """Wait for readiness or the next timer (at most `max_wait` s), then dispatch;
        returns how many descriptors were ready (0: no I/O arrived, only timers ran)."""
        deadline = self.next_deadline()
        wait = max_wait
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - self.clock()))
        try:
            events = self._epoll.poll(wait)
        except InterruptedError:
            events = []
        ran = 0
        for fd, _mask in events:
            callback = self._readers.get(fd)
            if callback is not None:
                ran += 1
                _guarded(callback)
        self.fire_due()
        return ran

    def run_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run until `done()` is true (returns True) or `timeout` s pass (returns False)."""
        end = None if timeout is None else self.clock() + timeout
        while not done():
            if end is not None:
                left = end - self.clock()
                if left <= 0:
                    return False
                self.run_once(left)
            else:
                self.run_once()
        return True


def _guarded(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception as exc:  # one component's bug must not stop PID 1
        log(f"error in {getattr(callback, '__qualname__', callback)!s}: {exc!r}")
