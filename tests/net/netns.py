"""Network namespaces for mvirt-net tests: each test gets its own, so the host is untouched
and tests running in parallel never meet. A relay carries TCP from the test's namespace to a
port inside the test namespace, so gRPC clients reach a daemon listening on its loopback."""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import socket
import subprocess
import threading
from pathlib import Path

from tests.namespaces import namespace_name

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def enter(name: str) -> None:
    """Moves the calling thread into network namespace ``name``."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs ``ip`` with arguments (checked)."""
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Netns:
    """A network namespace created for one test (loopback up)."""

    def __init__(self, kind: str = "net") -> None:
        self.name = namespace_name(kind)
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")

    def run(
        self, *argv: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs a program inside the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, argv: list[str], stderr: Path) -> subprocess.Popen[bytes]:
        """Starts a program inside the namespace, its stderr appended to ``stderr``."""
        with open(stderr, "ab") as err:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.name, *argv],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def delete(self) -> None:
        """Removes the namespace (interfaces inside go with it)."""
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)


class Relay:
    """Listens on 127.0.0.1 of the test's namespace and forwards each connection to
    ``host:port`` (loopback by default) inside namespace ``netns``."""

    def __init__(self, netns: str, port: int, host: str = "127.0.0.1") -> None:
        self.netns = netns
        self.port = port
        self.host = host
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """Stops accepting connections."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        enter(self.netns)  # this thread only
        try:
            upstream = socket.create_connection((self.host, self.port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            # A side that has finished sending (EOF) is passed on as a half-close, and the
            # other direction goes on: a peer that answers after reading to the end (a sink
            # reporting what it received) still gets its answer through.
            while sel.get_map():
                for key, _ in sel.select():
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if data:
                        key.data.sendall(data)
                        continue
                    sel.unregister(src)
                    key.data.shutdown(socket.SHUT_WR)
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            upstream.close()
