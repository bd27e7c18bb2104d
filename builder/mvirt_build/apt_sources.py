"""The machine's own Debian mirrors, read from its apt sources.

A user's Debian has its own mirror (maybe a local one); whatever the project adds to apt (the
backports suite on the host, the suites of the image's rootfs) uses the same mirror instead of
a host written into the project. Both formats apt reads are understood: one-line ``.list``
files and deb822 ``.sources`` files. Standard library only: ``scripts/bootstrap.sh`` runs this
file with the system interpreter before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class Source:
    """One repository line: where it is, which suites and components it serves."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    enabled: bool = True


def _one_line(text: str) -> list[Source]:
    """Entries of a ``.list`` file: ``deb [options] URI SUITE COMPONENT...``."""
    sources = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2:
            sources.append(Source(words[0], (words[1],), tuple(words[2:])))
    return sources


def _deb822(text: str) -> list[Source]:
    """Entries of a ``.sources`` file: stanzas of ``Key: value`` separated by blank lines."""
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key is not None:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        enabled = fields.get("enabled", "yes").lower() not in {"no", "false", "0"}
        for uri in fields.get("uris", "").split():
            sources.append(
                Source(
                    uri,
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                    enabled,
                )
            )
    return sources


def machine_sources(apt_dir: Path = APT_DIR) -> list[Source]:
    """Every enabled ``deb`` repository of the machine, in apt's reading order."""
    found = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        found += _one_line(main_list.read_text(errors="replace"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                found += _one_line(path.read_text(errors="replace"))
            elif path.suffix == ".sources":
                found += _deb822(path.read_text(errors="replace"))
    return [source for source in found if source.enabled]


def mirror_for(suite: str, apt_dir: Path = APT_DIR) -> str:
    """The URI the machine gets ``suite``'s main component from.

    Raises LookupError naming the suite when no source of the machine serves it.
    """
    for source in machine_sources(apt_dir):
        if suite in source.suites and "main" in source.components:
            return source.uri.rstrip("/")
    raise LookupError(
        f"no apt source of this machine serves {suite} main "
        f"(looked in {apt_dir}/sources.list and {apt_dir}/sources.list.d/)"
    )


def main(argv: list[str] | None = None) -> int:
    """``python3 apt_sources.py SUITE``: print the mirror URI serving SUITE."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("suite", help="e.g. bookworm or bookworm-security")
    parser.add_argument("--apt-dir", type=Path, default=APT_DIR)
    args = parser.parse_args(argv)
    try:
        print(mirror_for(args.suite, args.apt_dir))
    except LookupError as exc:
        print(f"apt_sources: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
