"""A booted image under QEMU for end-to-end tests: the builder's own QEMU command line, plus
user-mode networking with a forwarded port and a QMP socket; the serial console is collected
line by line while the test talks to the machine."""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import subprocess
import time
from pathlib import Path

from qemu.qmp import QMPClient

from mvirt_build import boot, config, qemu

GUEST_PORT = 8080


def free_port() -> int:
    """A TCP port on the host's loopback that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Machine:
    """QEMU (TCG) booting the UKI through OVMF, console on stdout."""

    def __init__(
        self,
        root: Path,
        uki: Path,
        workdir: Path,
        guest_ports: tuple[int, ...] = (GUEST_PORT,),
        iso: Path | None = None,
        disks: tuple[Path, ...] = (),
    ) -> None:
        cfg = config.load(root)
        # Each guest port is forwarded from an ephemeral port on the host's loopback.
        self.ports = {port: free_port() for port in guest_ports}
        self.host_port = self.ports[guest_ports[0]]
        self.qmp_socket = workdir / "qmp.sock"
        machine = boot.qemu_machine(cfg, "uefi", workdir, "tcg", uki, iso)
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}"
                            for guest, host in self.ports.items())  # fmt: skip
        machine.extra += [
            "-netdev", f"user,id=net0,{forwards}",
            "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56",
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
        ]  # fmt: skip
        machine.extra += qemu.data_disk_args(disks)  # /dev/vdb, ... in the node
        self.proc = subprocess.Popen(
            machine.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._buffer = b""
        self.lines: list[str] = []

    def _pump(self, timeout: float) -> bool:
        assert self.proc.stdout is not None
        if not self._selector.select(timeout):
            return True
        data = self.proc.stdout.read()
        if not data:
            return False
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines += [line.decode(errors="replace").rstrip("\r") for line in complete]
        return True

    def pump(self) -> None:
        """Collect what the console printed so far (keeps QEMU's output pipe drained)."""
        while self._pump(0) and self._selector.select(0):
            pass

    def console(self, start: int = 0) -> str:
        """The console from line `start` on."""
        return "\n".join(self.lines[start:])

    def wait_for(self, text: str, timeout: float, start: int = 0) -> str:
        """The first console line (from `start`) containing `text`."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[start:]:
                if text in line:
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no {text!r} within {timeout:.0f} s:\n{self.console()[-4000:]}"
                )
            if not self._pump(min(left, 0.5)) and self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited before {text!r}:\n{self.console()[-4000:]}")

    def ask(self, message: bytes, timeout: float = 60) -> str:
        """Send `message` to the guest service through the forwarded port; return its answer."""
        deadline = time.monotonic() + timeout
        while True:
            self._pump(0)
            try:
                with socket.create_connection(("127.0.0.1", self.host_port), timeout=10) as conn:
                    conn.sendall(message)
                    answer = conn.recv(128).decode().strip()
                if answer:
                    return answer
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer through port {self.host_port}")
            time.sleep(0.5)

    def qmp(self, command: str) -> None:
        """Run one QMP command."""

        async def run() -> None:
            client = QMPClient("mvirt-e2e")
            await client.connect(str(self.qmp_socket))
            try:
                await client.execute(command)
            finally:
                await client.disconnect()

        asyncio.run(run())

    def wait_exit(self, timeout: float) -> int | None:
        """QEMU's exit status once it has exited by itself, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.5)
        while self._pump(0) and self.proc.poll() is not None and self._selector.select(0):
            pass
        return self.proc.poll()

    def close(self) -> None:
        """Kill QEMU if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
