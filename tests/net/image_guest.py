"""The project's image booted in QEMU (TCG, direct kernel boot) on a NIC's TAP inside the
daemon's namespace. pideisn configures the network by DHCPv4/DHCPv6 from mvirt-net; a
test-only overlay archive appended to the initramfs adds the probe service
(:mod:`tests.net.probe_service`), so the default image is used unchanged."""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import time
from pathlib import Path

from mvirt_build import config
from mvirt_build.compare import decompress
from mvirt_build.qemu import QemuMachine
from tests.net.netns import Relay

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("probe_service.py")
PROBE_PORT = 8081
PROBE_SERVICE = f"""
# Added by the mvirt-net end-to-end tests (initramfs overlay).
[services.probe]
command = ["/usr/bin/python3", "-S", "/etc/mvirt-test/probe.py"]
restart = "always"
ready = {{ tcp = {PROBE_PORT} }}
stop_timeout = 5
"""


def image_paths() -> tuple[Path, Path] | None:
    """(kernel, initramfs) of the checkout's build, or None when not built."""
    cfg = config.load(REPO)
    kernel = cfg.output_dir / "kernel/bzImage"
    initrd = config.initramfs_image(cfg)
    return (kernel, initrd) if kernel.is_file() and initrd.is_file() else None


def probe_tree(root: Path) -> Path:
    """Writes the probe and the image's services.toml with the probe added under ``root`` (a
    tree to lay over the initramfs); returns ``root``."""
    (root / "etc/pideisn").mkdir(parents=True, exist_ok=True)
    (root / "etc/mvirt-test").mkdir(parents=True, exist_ok=True)
    services = (REPO / "mkosi.extra/etc/pideisn/services.toml").read_text()
    (root / "etc/pideisn/services.toml").write_text(services + PROBE_SERVICE)
    shutil.copy2(PROBE, root / "etc/mvirt-test/probe.py")
    return root


def overlay_initrd(initrd: Path, dest: Path) -> Path:
    """``initrd``'s archive followed by a newc archive holding :func:`probe_tree` (the kernel
    unpacks concatenated archives in order; later files replace earlier ones)."""
    root = probe_tree(dest.parent / "overlay-root")
    files = subprocess.run(["find", "etc"], cwd=root, capture_output=True, check=True).stdout
    archive = subprocess.run(
        ["busybox", "cpio", "-o", "-H", "newc"],
        cwd=root, input=files, capture_output=True, check=True,
    ).stdout  # fmt: skip
    # Uncompressed: an lz4 (legacy) stream has no end marker, so nothing may follow it.
    base = decompress(initrd.read_bytes())
    padding = b"\0" * (-len(base) % 4)
    dest.write_bytes(base + padding + archive)
    return dest


class ImageGuest:
    """One QEMU guest on TAP ``tap`` in namespace ``netns``; console collected line by line."""

    def __init__(self, netns: str, tap: str, mac: str, initrd: Path, kernel: Path) -> None:
        self.netns = netns
        cfg = config.load(REPO)
        # no_timer_check: under TCG on a loaded host the kernel's boot-time IO-APIC timer
        # check can miss its ticks and panic ("IO-APIC + timer doesn't work"); Linux skips
        # that check by itself as a KVM guest (CONFIG_KVM_GUEST) or on Hyper-V.
        machine = QemuMachine(
            accel="tcg",
            kernel=kernel,
            initrd=initrd,
            cmdline=f"{cfg.kernel.cmdline} no_timer_check",
            # The initramfs unpacks into a tmpfs of half the guest's memory: the node's
            # 79 MiB of files do not fit into 128 MiB of it (unpacking fails: write error).
            memory_mb=512,
        )
        machine.extra += [
            "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, *machine.command()],
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
        self._relays: dict[str, Relay] = {}

    def _pump(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        if not self._selector.select(timeout):
            return
        data = self.proc.stdout.read() or b""
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines += [line.decode(errors="replace").rstrip("\r") for line in complete]

    def console(self) -> str:
        """Everything the guest printed so far."""
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        """The first console line containing ``text`` (fails with the console on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.poll() is not None:
                self._pump(0)
                raise AssertionError(f"QEMU exited waiting for {text!r}:\n{self.console()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {text!r}:\n{self.console()}")
            self._pump(0.5)

    def probe(self, address: str, command: str, timeout: float = 60) -> str:
        """Sends ``command`` to the probe service of the guest at ``address`` (reached from
        the daemon's namespace) and returns its answer."""
        relay = self._relays.get(address)
        if relay is None:
            relay = self._relays[address] = Relay(self.netns, PROBE_PORT, address)
        host, port = relay.endpoint.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.sendall(command.encode() + b"\n")
            conn.settimeout(timeout)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = conn.recv(256)
                if not chunk:
                    break
                answer += chunk
        return answer.decode().strip()

    def close(self) -> None:
        """Kills QEMU."""
        for relay in self._relays.values():
            relay.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._selector.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
