"""The CLI's record of node fingerprints, like ssh's known_hosts: one ``host:port SHA256:<hex>``
line per API endpoint, written on first use and checked on every later connection."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_path() -> Path:
    """``$XDG_CONFIG_HOME/mvirt/known_hosts``, by default ``~/.config/mvirt/known_hosts``."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "mvirt" / "known_hosts"


@dataclass(frozen=True)
class KnownHost:
    """A recorded fingerprint and the line it is on (for a message saying what to edit)."""

    fingerprint: str
    line: int


class KnownHosts:
    """The file at ``path``; a missing file knows no host."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, target: str) -> KnownHost | None:
        """The fingerprint recorded for ``target`` (``host:port``), if any."""
        for number, raw in enumerate(self._lines(), start=1):
            fields = raw.split()
            if len(fields) >= 2 and not fields[0].startswith("#") and fields[0] == target:
                return KnownHost(fields[1], number)
        return None

    def add(self, target: str, fingerprint: str) -> None:
        """Records ``target``; the file is rewritten aside and renamed (never half-written)."""
        lines = [*self._lines(), f"{target} {fingerprint}"]
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text("".join(f"{line}\n" for line in lines))
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
