"""Tools whose versions shape a stage's output, keyed by the identity of their binary (resolved
path, size, mtime, inode) instead of by running them: a package upgrade replaces the file and so
changes the key, and a no-op build only stats a few files."""

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def identity(tool: str) -> str:
    """`path size mtime_ns inode` of the binary `tool` (a name on PATH or a path), or
    `tool: missing`."""
    found = tool if tool.startswith("/") else shutil.which(tool)
    if found is None:
        return f"{tool}: missing"
    try:
        real = Path(os.path.realpath(found))
        st = real.stat()
    except OSError:
        return f"{tool}: missing"
    return f"{real} {st.st_size} {st.st_mtime_ns} {st.st_ino}"


def identities(tools: Iterable[str]) -> dict[str, str]:
    """Stage inputs `tool <name>` → identity, for each tool."""
    return {f"tool {name}": identity(name) for name in tools}
