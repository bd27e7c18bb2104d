"""SOURCE_DATE_EPOCH for reproducible outputs: from the environment, else the last commit."""

from __future__ import annotations

import os
from pathlib import Path

from mvirt_build.errors import BuildError
from mvirt_build.run import output


def source_date_epoch(repo_root: Path) -> int:
    """$SOURCE_DATE_EPOCH when set, else the commit time of HEAD, else 0 (outside git)."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise BuildError(f"SOURCE_DATE_EPOCH={env!r} is not a number of seconds") from None
    try:
        text = output(["git", "-C", repo_root, "log", "-1", "--format=%ct"])
    except BuildError:
        return 0
    return int(text) if text.isdigit() else 0
