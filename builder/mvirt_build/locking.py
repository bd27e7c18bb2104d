"""Exclusive file locks, so two builds never share a kernel build tree, a cache entry being
made, or an output folder."""

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mvirt_build.errors import BuildError

log = logging.getLogger("mvirt_build")


@contextmanager
def locked(path: Path, what: str, wait: bool = False, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive (or `shared`) lock on `path` (created if needed). If another build
    holds it, fail at once, or with `wait`, say so and wait for it (caches shared by several
    checkouts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, mode | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            if not wait:
                raise BuildError(
                    f"{what} is in use by another build", f"lock file: {path}"
                ) from exc
            log.info("waiting for another build that holds %s", what)
            fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
