"""The size budget of the UKI: what each component of the image costs, next to the goal.

The initramfs stage measures its components (each compressed on its own with the image's
level, so the figures are close to, not exactly, their share of the compressed archive) and
records them in build/initramfs.sizes.json; the UKI stage adds the kernel and the stub and
prints the table against GOAL_BYTES.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import zstandard

GOAL_BYTES = 12 * 2**20
SITE_DIR = "/usr/lib/python3/dist-packages"
COMPONENTS = (
    "interpreter + stdlib",
    "grpc + protobuf",
    "other Python packages",
    "our code",
    "cloud-hypervisor",
    "firmware",
    "other",
)
_GRPC_PROTOBUF = tuple(f"{SITE_DIR}/{p}" for p in ("grpc/", "grpc_", "google/"))
_PYTHON_RUNTIME = ("/usr/lib/python3", "/usr/bin/python", "/usr/lib/x86_64-linux-gnu/", "/lib")


def component_of(path: str) -> str:
    """Which component of the image a path of the initramfs belongs to."""
    if path.startswith(f"{SITE_DIR}/mvirt/") or path == "/init" or path.startswith("/etc/"):
        return "our code"
    if path.startswith(_GRPC_PROTOBUF):
        return "grpc + protobuf"
    if path.startswith(SITE_DIR):
        return "other Python packages"
    if path == "/usr/bin/cloud-hypervisor":
        return "cloud-hypervisor"
    if path.startswith("/usr/share/mvirt/"):
        return "firmware"
    if path.startswith(_PYTHON_RUNTIME):
        return "interpreter + stdlib"
    return "other"


def measure(files: Iterable[tuple[str, bytes]], level: int) -> dict[str, dict[str, int]]:
    """Uncompressed and (separately) compressed bytes of each component."""
    data: dict[str, list[bytes]] = defaultdict(list)
    for path, content in files:
        data[component_of(path)].append(content)
    compressor = zstandard.ZstdCompressor(level=level)
    sizes = {}
    for name in COMPONENTS:
        blob = b"".join(data.get(name, []))
        sizes[name] = {
            "raw": len(blob),
            "compressed": len(compressor.compress(blob)) if blob else 0,
        }
    return sizes


def write_sizes(path: Path, sizes: dict[str, dict[str, int]]) -> None:
    """Record the initramfs components for the UKI stage."""
    path.write_text(json.dumps(sizes, indent=1) + "\n")


def read_sizes(path: Path) -> dict[str, dict[str, int]]:
    """The recorded components, or none when the record is missing or unreadable."""
    try:
        data: dict[str, dict[str, int]] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return {}


def _mib(size: int) -> str:
    return f"{size / 2**20:6.2f} MiB"


def uki_table(kernel: int, initramfs: int, sizes: dict[str, dict[str, int]], uki: int) -> list[str]:
    """The budget table: kernel, each initramfs component, the rest, the total and the goal."""
    lines = [f"  {'kernel (bzImage)':<24} {_mib(kernel)}"]
    for name in COMPONENTS:
        part = sizes.get(name)
        if part and part["raw"]:
            lines.append(
                f"  {name:<24} {_mib(part['compressed'])}   ({_mib(part['raw']).strip()} "
                "uncompressed)"
            )
    lines.append(
        f"  {'initramfs':<24} {_mib(initramfs)}   (the components above, together, as built)"
    )
    lines.append(f"  {'stub, sections, signature':<24} {_mib(max(uki - kernel - initramfs, 0))}")
    verdict = "within" if uki <= GOAL_BYTES else f"{_mib(uki - GOAL_BYTES).strip()} over"
    lines.append(f"  {'UKI':<24} {_mib(uki)}   goal {_mib(GOAL_BYTES).strip()}: {verdict}")
    return lines
