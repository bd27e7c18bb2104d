"""Readiness probes run by the supervisor: non-blocking, and never raising.

A TCP probe starts a non-blocking connect and looks at its outcome later, so PID 1 never waits
on a slow or unreachable address: at the next poll, or as soon as the connect has an outcome
when the probe is given a loop to watch the socket on (`watch`: the supervisor then sees a
service ready the moment it accepts, not a poll interval later; even on loopback the connect
is in progress when the call returns). Anything that goes wrong counts as "not ready yet" and
is logged once. The address is an IP literal, validated when the services file is
read, so no name resolution (which would block) ever happens here.
"""

from __future__ import annotations

import _socket
import errno
import os
import select

from mvirt.pideisn.console import log
from mvirt.pideisn.services_file import ip_literal

# True for type checkers only: importing collections.abc would cost boot time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from mvirt.pideisn.loop import Loop
    from mvirt.pideisn.services_file import Readiness

CONNECT_TIMEOUT = 1.0  # an attempt in flight longer than this is dropped and retried
_IN_PROGRESS = (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK)


class Probe:
    """One service's readiness check; `ready(now)` is cheap and never blocks or raises."""

    def __init__(self, name: str, ready: Readiness) -> None:
        self.name = name
        self.spec = ready
        self._sock: _socket.socket | None = None
        self._since = 0.0
        self._complained = False
        self._loop: Loop | None = None
        self._wake: Callable[[], None] | None = None

    def watch(self, loop: Loop, wake: Callable[[], None]) -> None:
        """Call `wake` when a connect in flight has an outcome (then call `ready` again)."""
        self._loop, self._wake = loop, wake

    def ready(self, now: float) -> bool:
        """True once the port accepts (or the file exists, or there is nothing to check)."""
        try:
            if self.spec.port is not None:
                return self._tcp(now)
            if self.spec.file is not None:
                return os.path.exists(self.spec.file)
            return True
        except Exception as exc:
            self.close()
            if not self._complained:
                self._complained = True
                log(f"{self.name}: readiness probe {self.spec.describe()} failed: {exc!r}")
            return False

    def _tcp(self, now: float) -> bool:
        sock = self._sock
        if sock is None:
            if not ip_literal(self.spec.host):
                # Resolving a name would block PID 1: never done, whoever built the spec.
                raise ValueError(f"{self.spec.host!r} is not an IP address")
            family = _socket.AF_INET6 if ":" in self.spec.host else _socket.AF_INET
            sock = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK)
            try:
                code = sock.connect_ex((self.spec.host, self.spec.port))
            except BaseException:
                sock.close()
                raise
            if code == 0:
                sock.close()
                return True
            if code not in _IN_PROGRESS:
                sock.close()
                return False
            self._sock, self._since = sock, now
            if self._loop is not None:
                self._loop.add_writer(sock.fileno(), self._connected)
            return False
        _r, writable, _x = select.select([], [sock], [], 0)
        if not writable:
            if now - self._since > CONNECT_TIMEOUT:
                self.close()
            return False
        code = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        self.close()
        return code == 0

    def _connected(self) -> None:
        if self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())  # one outcome per attempt
        if self._wake is not None:
            self._wake()

    def close(self) -> None:
        """Drop an attempt in flight."""
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
