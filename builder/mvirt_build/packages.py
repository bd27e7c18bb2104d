"""Release packages for hosts: the Python wheel and sdist, and the Debian packages.

``mvirt-build release`` (``make release``) copies the tracked files of the checkout into a
staging folder (so nothing untracked or generated leaks into a package and the checkout's
``build/`` is not used as setuptools' scratch space), builds the wheel and the sdist there, and
``debian/`` into ``.deb`` packages with ``dpkg-buildpackage``, then checks them with lintian.
Everything lands in ``dist/``.

The wheel is reproducible as setuptools writes it (its zip entries are dated by
``SOURCE_DATE_EPOCH``); the sdist is not (tar member times, owners and the gzip header come from
the staging copy and the clock), so it is rewritten in a canonical form: members sorted, dated
by ``SOURCE_DATE_EPOCH``, owned by root, gzip header without name or time.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from mvirt_build.errors import BuildError
from mvirt_build.run import output, run

log = logging.getLogger("mvirt_build.packages")

# The hash-locked runtime dependencies, installed into the packages' virtualenv.
RUNTIME_LOCK = Path("requirements/runtime.lock")


@dataclass(frozen=True)
class ReleaseFiles:
    """What a release made, all inside ``dist/``."""

    wheel: Path
    sdist: Path
    debs: list[Path]


def tracked_files(root: Path) -> list[Path]:
    """The files git tracks in ``root`` that exist in the work tree (relative paths)."""
    listing = output(["git", "-C", root, "ls-files", "-z"]).split("\0")
    return [Path(name) for name in listing if name and (root / name).is_file()]


def stage_sources(root: Path, dest: Path) -> Path:
    """A copy of the checkout's tracked files (work-tree content) in ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    for rel in tracked_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target, follow_symlinks=False)
    return dest


def normalize_sdist(path: Path, epoch: int) -> None:
    """Rewrite the sdist ``path`` canonically so the same sources give the same bytes."""
    with tarfile.open(path, "r:gz") as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src]  # type: ignore[union-attr]
    members.sort(key=lambda item: item[0].name)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member, data in members:
            member.mtime = epoch
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            member.mode = 0o755 if member.isdir() or member.mode & 0o111 else 0o644
            member.pax_headers = {}
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    tmp = path.with_suffix(".tmp")
    with (
        open(tmp, "wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(raw.getvalue())
    tmp.replace(path)


def build_python(src: Path, dist: Path, epoch: int) -> tuple[Path, Path]:
    """The wheel and the (normalized) sdist of the staged sources ``src``, into ``dist``."""
    env = {"SOURCE_DATE_EPOCH": str(epoch)}
    run(
        [sys.executable, "-m", "build", "--outdir", dist, src],
        cwd=src,
        env=env,
        hint="the build front end comes with the dev dependencies: run scripts/bootstrap.sh",
    )
    wheel = next(dist.glob("*.whl"))
    sdist = next(dist.glob("*.tar.gz"))
    normalize_sdist(sdist, epoch)
    return wheel, sdist


def build_debs(src: Path, dist: Path, lock: Path) -> list[Path]:
    """The Debian packages of ``src/debian`` (binary only, unsigned), moved into ``dist``."""
    if not lock.is_file():
        raise BuildError(f"the runtime lock {lock} is missing", "it is part of the checkout")
    run(
        ["dpkg-buildpackage", "-us", "-uc", "-b"],
        cwd=src,
        env={"LOCK": str(lock.resolve())},
        hint="install the packaging tools with scripts/bootstrap.sh",
    )
    debs = []
    for made in sorted(src.parent.glob("*.deb")):
        debs.append(Path(shutil.move(made, dist / made.name)))
    for extra in src.parent.glob("*.buildinfo"):
        extra.unlink()
    for extra in src.parent.glob("*.changes"):
        extra.unlink()
    if not debs:
        raise BuildError("dpkg-buildpackage finished but made no .deb")
    return debs


def lintian_errors(debs: list[Path]) -> str | None:
    """lintian's error lines for ``debs``, or None when it finds no error."""
    proc = subprocess.run(
        ["lintian", "--fail-on", "error", "--no-tag-display-limit", *map(str, debs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return None
    errors = [line for line in proc.stdout.splitlines() if line.startswith("E:")]
    return "\n".join(errors) or proc.stdout + proc.stderr


def release(root: Path, dist: Path, epoch: int, debs: bool = True) -> ReleaseFiles:
    """Build every release package of the checkout ``root`` into ``dist`` (emptied first)."""
    if dist.exists():
        shutil.rmtree(dist)
    dist.mkdir(parents=True)
    staging = root / "build" / "release"
    src = stage_sources(root, staging / "mvirt")
    os.utime(src, (epoch, epoch))
    wheel, sdist = build_python(src, dist, epoch)
    made: list[Path] = []
    if debs:
        made = build_debs(src, dist, root / RUNTIME_LOCK)
        problems = lintian_errors(made)
        if problems:
            raise BuildError(f"lintian found errors in the packages:\n{problems}")
    shutil.rmtree(staging)
    return ReleaseFiles(wheel, sdist, made)
