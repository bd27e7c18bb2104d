"""Delegated IPv6 prefixes (DHCPv6 IA_PD) kept for nested VMs: carve sub-prefixes, publish.

The pool is published as a small text file (one `prefix/len valid preferred` line per
delegated prefix) so daemons started later, e.g. the network service handing prefixes to
guests, can read what the upstream delegated without talking to PID 1.
"""

from __future__ import annotations

import _socket
import os


def _to_int(prefix: str) -> int:
    return int.from_bytes(_socket.inet_pton(_socket.AF_INET6, prefix), "big")


def _to_str(value: int) -> str:
    return _socket.inet_ntop(_socket.AF_INET6, value.to_bytes(16, "big"))


def normal_prefix(prefix: str, prefixlen: int) -> str:
    """The one form a prefix is stored and compared in: host bits cleared, canonical text."""
    return _to_str(_to_int(prefix) & _mask(prefixlen))


class PrefixPool:
    """Delegated prefixes and the sub-prefixes handed out of them."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.delegated: dict[tuple[str, int], tuple[int, int]] = {}
        self.allocated: set[tuple[str, int]] = set()

    def add(self, prefix: str, prefixlen: int, valid: int, preferred: int) -> None:
        """Record (or refresh) a delegated prefix."""
        self.delegated[(normal_prefix(prefix, prefixlen), prefixlen)] = (valid, preferred)
        self.publish()

    def remove(self, prefix: str, prefixlen: int) -> None:
        """Forget a delegated prefix and everything allocated from it."""
        self.delegated.pop((normal_prefix(prefix, prefixlen), prefixlen), None)
        self.allocated = {a for a in self.allocated if self._parent(a) is not None}
        self.publish()

    def _parent(self, sub: tuple[str, int]) -> tuple[str, int] | None:
        value = _to_int(sub[0])
        for prefix, length in self.delegated:
            if length <= sub[1] and value & _mask(length) == _to_int(prefix):
                return (prefix, length)
        return None

    def allocate(self, length: int = 64) -> tuple[str, int] | None:
        """The first free sub-prefix of `length` bits, or None when the pool is exhausted."""
        for prefix, plen in sorted(self.delegated):
            if plen > length:
                continue
            base = _to_int(prefix)
            step = 1 << (128 - length)
            for i in range(min(1 << (length - plen), 1 << 16)):
                candidate = (_to_str(base + i * step), length)
                if candidate not in self.allocated:
                    self.allocated.add(candidate)
                    return candidate
        return None

    def release(self, prefix: str, length: int) -> None:
        """Give a sub-prefix back."""
        self.allocated.discard((prefix, length))

    def publish(self) -> None:
        """Write the delegated prefixes to `path` atomically (if a path was given)."""
        if self.path is None:
            return
        lines = [f"{p}/{n} {v} {pr}\n" for (p, n), (v, pr) in sorted(self.delegated.items())]
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as out:
            out.writelines(lines)
        os.replace(tmp, self.path)


def _mask(length: int) -> int:
    return ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)
