"""Which processes hold a volume open (a running VM's hypervisor keeps its disk open)."""

from __future__ import annotations

import os
from pathlib import Path


def holders(path: Path, proc: Path = Path("/proc")) -> list[tuple[int, str]]:
    """(pid, command name) of every process with ``path`` (or the device it links to) open."""
    targets = {str(path)}
    try:
        targets.add(os.path.realpath(path))
    except OSError:
        pass
    found: list[tuple[int, str]] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    comm = (entry / "comm").read_text().strip()
                    found.append((int(entry.name), comm))
                    break
            except OSError:
                continue
    return found
