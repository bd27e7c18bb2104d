"""Which host paths a request may hand to a hypervisor.

A VM's kernel, initramfs, disks and vhost-user sockets are opened by the hypervisor with the
daemon's rights, so a request could otherwise read ``/etc/shadow`` as a "disk" or attach the
daemon's own database. Paths must therefore lie under one of the configured image roots
(``--image-root``, repeatable), judged by where they really lead (symlinks and ``..``
resolved), and the daemon's data dir, ``/etc``, ``/proc`` and ``/sys`` are refused whatever
the roots say. ``/dev`` is refused too, except block devices reached through a root below
``/dev`` (``/dev/zvol``, where the storage daemon's volumes appear): those keep the name they
were given, since the node a ``/dev/zvol`` link points to is renumbered across boots.

A path that passes is replaced by its canonical spelling, so one file under two spellings is
one file (the same disk cannot be attached twice by spelling it differently).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mvirt.daemon.errors import InvalidArgumentError
from mvirt.vmm import locations

DEFAULT_IMAGE_ROOTS = ("/var/lib/mvirt/images", "/run/mvirt", "/dev/zvol", locations.SHARED_FILES)
ALWAYS_REFUSED = ("/etc", "/proc", "/sys")
_DEV = "/dev"
_SHOWN = 120


def shown(value: str, limit: int = _SHOWN) -> str:
    """``value`` quoted for an error message, cut short: requests can carry megabytes."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


def check_text(field: str, value: str) -> None:
    """Strings that reach files, command lines or the store carry no NUL byte."""
    if "\0" in value:
        raise InvalidArgumentError(f"{field} contains a NUL byte")


def _under(path: str, root: str) -> bool:
    return root in ("/", path) or path.startswith(root + "/")


@dataclass(frozen=True)
class PathPolicy:
    """The image roots and the refused places (see the module docstring)."""

    roots: tuple[str, ...]
    refused: tuple[str, ...]

    @classmethod
    def create(cls, roots: Iterable[str], data_dir: Path) -> PathPolicy:
        """Roots as given (resolved now), plus the daemon's data dir among the refused."""
        resolved = tuple(dict.fromkeys(os.path.realpath(root) for root in roots))
        return cls(resolved, (os.path.realpath(data_dir), *ALWAYS_REFUSED))

    def describe(self) -> str:
        """The roots, for messages."""
        return ", ".join(self.roots) or "(none)"

    def check(self, field: str, path: str, *, must_exist: bool = True) -> str:
        """The canonical spelling of ``path`` if the policy allows it, else
        :class:`InvalidArgumentError` naming ``field``.

        ``must_exist`` is False for vhost-user sockets, which their server may create later.
        """
        if not path:
            raise InvalidArgumentError(f"{field} is empty: give an absolute path")
        check_text(field, path)
        if not os.path.isabs(path):
            raise InvalidArgumentError(f"{field} {shown(path)} is not an absolute path")
        spelled = os.path.normpath(path)
        real = os.path.realpath(path)
        for refused in self.refused:
            if _under(real, refused):
                raise InvalidArgumentError(
                    f"{field} {shown(path)} leads to {shown(real)}, inside {refused}, which "
                    "mvirt-vmm never hands to a VM"
                )
        if _under(real, _DEV):
            if must_exist and self._is_block_device(real) and self._root_of(spelled, dev=True):
                return spelled
            raise InvalidArgumentError(
                f"{field} {shown(path)} leads to {shown(real)} in /dev: only block devices "
                "under an image root in /dev (such as /dev/zvol) may be used"
            )
        if self._root_of(real, dev=False) is None:
            raise InvalidArgumentError(
                f"{field} {shown(path)} leads to {shown(real)}, outside the image roots "
                f"({self.describe()}); move it there or start mvirt-vmm with --image-root"
            )
        return real

    def _root_of(self, path: str, *, dev: bool) -> str | None:
        # Roots in /dev only count for block devices; the others only for everything else.
        for root in self.roots:
            if _under(root, _DEV) == dev and _under(path, root):
                return root
        return None

    @staticmethod
    def _is_block_device(path: str) -> bool:
        try:
            return stat.S_ISBLK(os.stat(path).st_mode)
        except OSError:
            return False
