"""Non-blocking randomness for transaction ids and retransmission jitter.

`os.urandom` uses getrandom(2), which blocks until the kernel's pool is initialised: early in
a VM without virtio-rng that can take seconds. Transaction ids need no cryptographic strength,
so /dev/urandom (never blocks) is read instead, with the clock as a last resort.
"""

from __future__ import annotations

import time


def random_bytes(count: int) -> bytes:
    """`count` unpredictable-enough bytes without ever blocking."""
    try:
        with open("/dev/urandom", "rb", buffering=0) as source:
            data = source.read(count)
        if len(data) == count:
            return data
    except OSError:
        pass
    seed = time.monotonic_ns() ^ time.time_ns()
    return (seed * 6364136223846793005 % (1 << 64)).to_bytes(8, "big")[:count].ljust(count, b"\1")


def jitter(spread: float) -> float:
    """A uniform value in [-spread, +spread]."""
    value = int.from_bytes(random_bytes(2), "big") / 65535.0
    return (value * 2.0 - 1.0) * spread
