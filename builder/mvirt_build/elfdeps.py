"""Shared-library closure of ELF files inside an image tree, read with pyelftools (no `ldd`:
the tree's binaries are never run, and the tree's own library folders are searched)."""

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, cast

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from mvirt_build.errors import BuildError

# Debian's multiarch search order for x86-64 (ld.so.conf.d/x86_64-linux-gnu.conf, then defaults).
DEFAULT_DIRS = (
    "/usr/local/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
)
MAX_LINKS = 40


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader needs to run a file."""

    machine: str
    interpreter: str | None
    needed: tuple[str, ...]
    runpath: tuple[str, ...]


def read_elf(path: Path) -> ElfInfo:
    """PT_INTERP, DT_NEEDED and DT_RUNPATH/DT_RPATH of an ELF file."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            interp = None
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_INTERP":
                    interp = cast(Any, seg).get_interp_name()
            needed: list[str] = []
            runpath: list[str] = []
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in cast(Iterable[Any], section.iter_tags()):
                        if tag.entry.d_tag == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                            value = tag.runpath if tag.entry.d_tag == "DT_RUNPATH" else tag.rpath
                            runpath.extend(p for p in value.split(":") if p)
            return ElfInfo(elf["e_machine"], interp, tuple(needed), tuple(runpath))
    except (OSError, ELFError) as exc:
        raise BuildError(f"{path}: not a readable ELF file ({exc})") from exc


@dataclass
class Resolved:
    """An image path followed through the tree's symlinks."""

    real: str  # the path of the file itself
    links: dict[str, str] = field(default_factory=dict)  # symlink path -> its target


def resolve(tree: Path, image_path: str) -> Resolved:
    """Follow `image_path` component by component inside `tree` (absolute links stay inside)."""
    links: dict[str, str] = {}
    parts = list(PurePosixPath(image_path).parts[1:])
    current = PurePosixPath("/")
    hops = 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            current = current.parent
            continue
        candidate = current / name
        host = tree / str(candidate).lstrip("/")
        if host.is_symlink():
            hops += 1
            if hops > MAX_LINKS:
                raise BuildError(f"too many symlinks resolving {image_path} in {tree}")
            target = os.readlink(host)
            links[str(candidate)] = target
            target_path = PurePosixPath(target)
            parts = (
                list(target_path.parts[1:] if target_path.is_absolute() else target_path.parts)
                + parts
            )
            if target_path.is_absolute():
                current = PurePosixPath("/")
            continue
        current = candidate
    return Resolved(str(current), links)


def find_library(tree: Path, name: str, runpath: Iterable[str], origin: str) -> Resolved | None:
    """Where the loader would find library `name` in the tree."""
    dirs = [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in runpath]
    for folder in [*dirs, *DEFAULT_DIRS]:
        resolved = resolve(tree, f"{folder}/{name}")
        if (tree / resolved.real.lstrip("/")).is_file():
            return resolved
    return None


def closure(tree: Path, roots: Iterable[str]) -> tuple[set[str], dict[str, str]]:
    """Every file the roots need to run (roots included) and the symlinks on the way.

    Returns (real image paths of files, symlink path -> target).
    """
    files: set[str] = set()
    links: dict[str, str] = {}
    queue = list(roots)
    while queue:
        resolved = resolve(tree, queue.pop())
        links.update(resolved.links)
        if resolved.real in files:
            continue
        host = tree / resolved.real.lstrip("/")
        if not host.is_file():
            raise BuildError(f"{resolved.real} is not a file in {tree}")
        files.add(resolved.real)
        info = read_elf(host)
        if info.interpreter:
            queue.append(info.interpreter)
        origin = str(PurePosixPath(resolved.real).parent)
        for lib in info.needed:
            found = find_library(tree, lib, info.runpath, origin)
            if found is None:
                raise BuildError(
                    f"{resolved.real} needs {lib}, which is not in the rootfs",
                    "add the package that ships it to mkosi.conf",
                )
            links.update(found.links)
            queue.append(found.real)
    return files, links


def is_elf(tree: Path, image_path: str) -> bool:
    """True when `image_path` (links followed inside `tree`) is an ELF file."""
    host = tree / resolve(tree, image_path).real.lstrip("/")
    try:
        with open(host, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def with_closure(tree: Path, paths: Iterable[str]) -> tuple[set[str], dict[str, str]]:
    """`paths` as files of the image: an ELF file with every library it needs (see
    :func:`closure`), any other file as it is. Returns (real image paths, symlink -> target)."""
    paths = list(paths)
    elf = [p for p in paths if is_elf(tree, p)]
    files, links = closure(tree, elf)
    for path in paths:
        if path not in elf:
            resolved = resolve(tree, path)
            links.update(resolved.links)
            files.add(resolved.real)
    return files, links
