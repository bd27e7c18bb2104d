"""The builder's one way to run an external program: log it, capture output, fail readably."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from mvirt_build.errors import BuildError

log = logging.getLogger("mvirt_build")


def require_tool(name: str, package: str) -> str:
    """Return the path of program `name`, or fail saying which Debian package provides it."""
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{name} not found", hint=f"apt-get install {package}")
    return path


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv`, capturing stdout and stderr; a non-zero exit raises BuildError with stderr."""
    args = [os.fspath(a) for a in argv]
    log.debug("run: %s", shlex.join(args))
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            args, cwd=cwd, env=full_env, input=input_bytes, capture_output=True, check=False
        )
    except FileNotFoundError as exc:
        raise BuildError(f"cannot run {args[0]}: {exc.strerror}") from exc
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-15:]
        raise BuildError(
            f"{shlex.join(args)} failed with exit code {proc.returncode}"
            + ("".join(f"\n    {line}" for line in tail))
        )
    return proc
