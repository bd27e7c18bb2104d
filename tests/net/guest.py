"""A guest for data-plane tests without booting a VM: a network namespace whose ``eth0`` is a
TAP, joined to a NIC's TAP by a thread that copies Ethernet frames both ways, as a hypervisor
does. The guest's network stack is the real Linux one; booted guests are in the e2e tests."""

from __future__ import annotations

import fcntl
import os
import selectors
import struct
import threading

from tests.net.netns import Netns, enter

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name: str) -> int:
    """Opens (or creates) TAP ``name`` in the calling thread's namespace; returns its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def _in_netns(netns: str, fn, *args):
    result: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            enter(netns)
            result.append(fn(*args))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


class NsGuest:
    """A namespace guest attached to the TAP ``tap`` inside ``host_netns``."""

    def __init__(
        self,
        host_netns: str,
        tap: str,
        mac: str,
        ipv4: str = "",
        ipv6: str = "",
        configure: bool = True,
    ) -> None:
        self.ns = Netns("guest")
        self.host_fd: int = _in_netns(host_netns, open_tap, tap)
        self.guest_fd: int = _in_netns(self.ns.name, open_tap, "eth0")
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()
        self.ns.run("ip", "link", "set", "eth0", "address", mac)
        self.ns.run("ip", "link", "set", "eth0", "up")
        if configure and ipv4:
            self.ns.run("ip", "addr", "add", f"{ipv4}/32", "dev", "eth0")
            self.ns.run("ip", "route", "add", "169.254.0.1", "dev", "eth0")
            self.ns.run("ip", "route", "add", "default", "via", "169.254.0.1", "dev", "eth0")
        if configure and ipv6:
            self.ns.run("ip", "addr", "add", f"{ipv6}/128", "dev", "eth0", "nodad")
            self.ns.run("ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0")

    def ping(self, address: str, source: str = "", count: int = 1) -> bool:
        """True if ``address`` answers an ICMP echo from the guest (a few tries: the first
        echo may wait for neighbour discovery)."""
        # busybox (a bootstrap package) rather than iputils, which minimal hosts lack.
        applet = "ping6" if ":" in address else "ping"
        argv = ["busybox", applet, "-c", str(count), "-W", "2"]
        if source:
            argv += ["-I", source]
        return any(self.ns.run(*argv, address, check=False).returncode == 0 for _ in range(3))

    def _relay(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.host_fd, selectors.EVENT_READ, self.guest_fd)
        sel.register(self.guest_fd, selectors.EVENT_READ, self.host_fd)
        sel.register(self._stop_r, selectors.EVENT_READ, None)
        try:
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    try:
                        frame = os.read(key.fd, 65536)
                        os.write(key.data, frame)
                    except OSError:
                        continue
        finally:
            sel.close()

    def close(self) -> None:
        """Detaches from the TAP and removes the guest namespace."""
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for fd in (self.host_fd, self.guest_fd, self._stop_r, self._stop_w):
            os.close(fd)
        self.ns.delete()
