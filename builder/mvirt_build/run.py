"""The one way the builder runs a process: logged, output captured, failures made readable."""

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from mvirt_build.errors import BuildError

log = logging.getLogger("mvirt_build.run")

Command = Sequence[str | os.PathLike[str]]


def run(
    cmd: Command,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    stream: bool = False,
    hint: str | None = None,
    input: bytes | None = None,
    clean_env: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run `cmd`; raise BuildError with the tail of its output when it fails.

    `env` entries are added to the current environment, or with `clean_env` are the whole
    environment (nothing of the host's leaks into the command). With `stream`, output goes
    straight to the terminal (long builds whose progress a user wants to see), not captured.
    Without `check`, a failed command is returned (its output captured) for the caller to
    explain.
    """
    argv = [os.fspath(c) for c in cmd]
    log.debug("run: %s", shlex.join(argv))
    if clean_env:
        full_env: dict[str, str] | None = dict(env or {})
    else:
        full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            input=input,
            stdout=None if stream or not capture else subprocess.PIPE,
            stderr=None if stream or not capture else subprocess.STDOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BuildError(
            f"{argv[0]}: command not found",
            hint or "run `mvirt-build check` to see what is missing and how to install it",
        ) from exc
    if proc.returncode != 0 and check:
        tail = ""
        if proc.stdout:
            lines = proc.stdout.decode(errors="replace").rstrip().splitlines()[-25:]
            tail = "\n" + "\n".join(f"    {line}" for line in lines)
        raise BuildError(
            f"`{shlex.join(argv)}` failed with exit status {proc.returncode}{tail}", hint
        )
    return proc


def output(cmd: Command, **kwargs: object) -> str:
    """Run `cmd` and return its output as text, stripped."""
    proc = run(cmd, **kwargs)  # type: ignore[arg-type]
    return proc.stdout.decode(errors="replace").strip()
