"""`mvirt-build boot --api`: boot the node with its API reachable from this host.

The machine gets user-mode networking with the four API ports forwarded to the host's
loopback, and `mvirt.api=tls` on its kernel command line (the daemons then also listen with
mutual TLS on the node's addresses; see mkosi.extra/etc/pideisn/services.toml). For a UEFI
boot the word goes into the `.cmdline` of a temporary, unsigned copy of the UKI (a signed UKI's
command line cannot be changed from outside); for a direct kernel boot it is appended.

Once pideisn is ready, the builder runs the `mvirt` CLI, as a separate program (the builder
imports no daemon or client code), until the node answers `system` over mutual TLS, pinned to
the fingerprint the daemons printed on the console.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from mvirt_build import uki
from mvirt_build.errors import BuildError

API_PORTS = (50051, 50052, 50053, 50054)
API_WORD = "mvirt.api=tls"
FINGERPRINT = re.compile(rb"API certificate fingerprint (SHA256:[0-9a-fA-F]{64})")
CLIENT_FILES = ("client.crt", "client.key")


def netdev_args(ports: tuple[int, ...] = API_PORTS, host: str = "127.0.0.1") -> list[str]:
    """QEMU user-mode networking with each port forwarded from `host` (the same number)."""
    forwards = ",".join(f"hostfwd=tcp:{host}:{port}-:{port}" for port in ports)
    return ["-netdev", f"user,id=api0,{forwards}", "-device", "virtio-net-pci,netdev=api0"]


def check_cmdline_word(word: str) -> str:
    """`word` if it is one kernel command-line word (no spaces, quotes or control
    characters: it must not split into, or run into, other words)."""
    if not word or any(c.isspace() or c == '"' or ord(c) < 0x20 or c == "\x7f" for c in word):
        raise BuildError(
            f"{word!r} is not one kernel command-line word",
            "give one KEY=VALUE per --cmdline, without spaces or quotes",
        )
    return word


def with_cmdline_word(image: bytes, stub: bytes, sbat: bytes, word: str) -> bytes:
    """The UKI `image` reassembled on `stub` with `word` added to its `.cmdline` (unsigned)."""
    layout = uki.inspect(image)
    contents: dict[str, bytes] = {}
    for name in uki.APPENDED:
        section = layout.section(name)
        if section is None:
            raise BuildError(f"the UKI has no {name} section", "rebuild it with `mvirt-build uki`")
        contents[name] = section.data
    cmdline = contents[".cmdline"].rstrip(b"\0").decode().split()
    if word not in cmdline:
        cmdline.append(word)
    contents[".cmdline"] = " ".join(cmdline).encode() + b"\n"
    return uki.assemble(stub, contents, sbat)


def fingerprint_of(lines: list[str]) -> str | None:
    """The node's API fingerprint from console lines (every daemon prints the same one)."""
    for line in lines:
        match = FINGERPRINT.search(line.encode())
        if match:
            return match.group(1).decode()
    return None


def client_command(keys: Path, fingerprint: str | None, *args: str) -> list[str]:
    """The `mvirt` command line that reaches the node through the forwarded vmm port."""
    pin = ["--tls-fingerprint", fingerprint] if fingerprint else []
    return ["mvirt", "--server", f"localhost:{API_PORTS[0]}", "--tls", f"{keys}/", *pin, *args]


def check_client_keys(keys: Path) -> None:
    """The client certificate and key `mvirt-build genkey` writes must exist."""
    missing = [name for name in ("api-ca.crt", *CLIENT_FILES) if not (keys / name).is_file()]
    if missing:
        raise BuildError(
            f"--api needs {', '.join(missing)} in {keys}",
            "run `mvirt-build genkey` (it keeps existing keys), then rebuild the image",
        )


def wait_for_api(keys: Path, fingerprint: str | None, timeout: float) -> tuple[bool, str]:
    """Run `mvirt ... system` until it succeeds or `timeout` passes: (answered, its output)."""
    cli = Path(sys.executable).parent / "mvirt"
    argv = [str(cli), *client_command(keys, fingerprint, "system")[1:]]
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode == 0:
            return True, proc.stdout
        last = (proc.stderr or proc.stdout).strip()
        if time.monotonic() > deadline:
            return False, last
        time.sleep(1.0)  # polling the API until it answers (bounded by the deadline)
