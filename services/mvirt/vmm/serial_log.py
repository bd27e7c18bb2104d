"""Keeping ``serial.log`` bounded while the VM runs.

QEMU appends everything the guest prints to ``serial.log`` itself (``logfile=`` with
``logappend=on``, so its descriptor has O_APPEND). The console hub, which reads the same
bytes from the serial socket, counts them and rotates the log once it has passed its limit:
the file is copied to ``serial.log.1`` and truncated in place (QEMU's next write lands at the
new end, as with logrotate's copytruncate). At most about twice the limit stays on disk; what
the guest prints in the instant between the copy and the truncation is lost.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("mvirt.vmm.serial_log")

DEFAULT_MAX_BYTES = 1024 * 1024


def rotated(path: Path) -> Path:
    """Where the previous part of the log is kept."""
    return path.with_name(path.name + ".1")


def rotate_if_needed(path: Path, max_bytes: int) -> bool:
    """Move the log to ``<name>.1`` and empty it when it is over ``max_bytes``."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        tmp = path.with_name(path.name + ".rotating")
        shutil.copyfile(path, tmp)
        os.replace(tmp, rotated(path))
        os.truncate(path, 0)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("rotating %s failed: %s", path, exc)
        return False
    return True


class LogRotator:
    """Counts what the guest printed and rotates the log about every ``max_bytes / 8``."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._check_every = max(4096, max_bytes // 8)
        self._since_check = 0

    def wrote(self, count: int) -> None:
        """``count`` more bytes went to the log."""
        self._since_check += count
        if self._since_check >= self._check_every:
            self._since_check = 0
            rotate_if_needed(self.path, self.max_bytes)
