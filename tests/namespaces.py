"""Names of the network namespaces tests create, and removal of those a killed run left.

A test deletes its namespaces when it ends, but a run that is killed (SIGTERM, a CI timeout)
never gets there: its namespaces stay in /run/netns until the machine reboots, and a later
run that picks the same name cannot create it. So every namespace a test makes is named
`mvtest-<kind>-<pid namespace>-<pid>-<random>` after the process that made it, and each test
session first removes those whose process is gone. Namespaces of processes in another pid
namespace (another container's run) are left alone: their pids mean nothing here.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

NETNS_DIR = Path("/run/netns")
_NAME = re.compile(r"^mvtest-[a-z]+-(\d+)-(\d+)-[0-9a-f]+$")


def _pid_namespace() -> int:
    return os.stat("/proc/self/ns/pid").st_ino


def namespace_name(kind: str) -> str:
    """A fresh namespace name for this process (`kind`: lower-case letters, what it is for)."""
    return f"mvtest-{kind}-{_pid_namespace()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def remove_stale(netns_dir: Path = NETNS_DIR) -> list[str]:
    """Delete the namespaces named by `namespace_name` whose creating process has exited
    (in this pid namespace); the names removed."""
    if not netns_dir.is_dir():
        return []
    ours = _pid_namespace()
    removed = []
    for entry in sorted(netns_dir.iterdir()):
        match = _NAME.match(entry.name)
        if match is None or int(match.group(1)) != ours or _alive(int(match.group(2))):
            continue
        subprocess.run(["ip", "netns", "del", entry.name], check=False, capture_output=True)
        removed.append(entry.name)
    return removed
