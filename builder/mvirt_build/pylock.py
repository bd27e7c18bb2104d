"""The Python runtime lock (`requirements/runtime.lock`): every third-party package the project
runs with, each pinned to one version and to the SHA-256 of its published files.

One lock serves two places: `scripts/bootstrap.sh` installs it into the development virtualenv
(`pip install --require-hashes`), and the rootfs stage installs the same wheels into the image
tree. For the image the wheels are first downloaded on the host into the builder's cache
(`<cache>/wheels`; the host's pip has the network's CA and configuration, the tree has
neither), then installed into the tree offline (`--no-index --find-links`) for the image's
interpreter and platform. pip refuses any file whose hash the lock does not list.

Regenerate the lock after changing `dependencies` in pyproject.toml with `make lock`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from mvirt_build.errors import BuildError
from mvirt_build.run import run

LOCK_PATH = Path("requirements/runtime.lock")
SITE_DIR = "usr/lib/python3/dist-packages"
# The image's interpreter: Debian bookworm's CPython 3.11 on x86-64 with glibc 2.36.
PYTHON_VERSION = "3.11"
ABI = "cp311"
GLIBC_MINOR = (17, 36)
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class Pin:
    """One locked package: name, exact version and the hashes of its files."""

    name: str
    version: str
    hashes: tuple[str, ...]


def parse_lock(text: str, where: str = str(LOCK_PATH)) -> list[Pin]:
    """The pins of a hash-checking requirements file; every requirement must be `name==version`
    with at least one `--hash=sha256:`, as `make lock` writes them."""
    pins: list[Pin] = []
    logical = re.sub(r"\\\n", " ", text)
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _REQUIREMENT.match(line)
        if match is None:
            raise BuildError(
                f"{where}: line {number} is not `name==version --hash=sha256:...`: {line[:60]}",
                "regenerate the lock with `make lock`",
            )
        hashes = tuple(_HASH.findall(line))
        if not hashes:
            raise BuildError(
                f"{where}: {match.group(1)} has no --hash", "regenerate the lock with `make lock`"
            )
        pins.append(Pin(match.group(1).lower(), match.group(2), hashes))
    if not pins:
        raise BuildError(f"{where}: no packages locked", "regenerate the lock with `make lock`")
    return pins


def platform_options() -> list[str]:
    """pip options that select wheels for the image's interpreter, not the host's."""
    options = ["--only-binary", ":all:", "--python-version", PYTHON_VERSION,
               "--implementation", "cp", "--abi", ABI]  # fmt: skip
    low, high = GLIBC_MINOR
    for minor in range(high, low - 1, -1):
        options += ["--platform", f"manylinux_2_{minor}_x86_64"]
    options += ["--platform", "manylinux2014_x86_64", "--platform", "linux_x86_64"]
    return options


def wheel_cache(lock: Path) -> Path:
    """Where the locked wheels are kept between builds: `.cache/wheels` in the checkout of
    `lock`, which a plain `mkosi build` sees too (its sandbox has the checkout, not the
    user's cache, and no network)."""
    return lock.resolve().parent.parent / ".cache" / "wheels"


def _all_cached(lock: Path, dest: Path) -> bool:
    """Whether `dest` holds a file for every pin of `lock` (by the lock's hashes)."""
    have = {hashlib.sha256(path.read_bytes()).hexdigest() for path in dest.glob("*.whl")}
    return all(have.intersection(pin.hashes) for pin in parse_lock(lock.read_text()))


def download_wheels(lock: Path) -> Path:
    """Download every locked wheel for the image's platform into the cache (pip checks each
    file against the lock's hashes); with every one there already, the registry is not asked
    at all, so the build works offline."""
    dest = wheel_cache(lock)
    dest.mkdir(parents=True, exist_ok=True)
    if _all_cached(lock, dest):
        return dest
    run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--no-deps", *platform_options(), "--dest", dest, "-r", lock],
        hint="pip needs the package registry once to fill the wheel cache; after that the "
        "build works offline",
    )  # fmt: skip
    return dest


def install_into_tree(lock: Path, tree: Path) -> None:
    """Install the locked packages into the tree's site directory, offline, from the cache."""
    wheels = download_wheels(lock)
    site = tree / SITE_DIR
    site.mkdir(parents=True, exist_ok=True)
    staging = tree / "tmp" / "mvirt-wheels"
    shutil.rmtree(staging, ignore_errors=True)
    run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-index", "--find-links", wheels, "--require-hashes", "--no-deps", "--no-compile",
         *platform_options(), "--target", staging, "-r", lock],
        hint="the wheel cache lacks a locked file; run the build once with the registry "
        "reachable",
    )  # fmt: skip
    # Console scripts of the packages are not part of the image (the services run modules).
    shutil.rmtree(staging / "bin", ignore_errors=True)
    for entry in sorted(staging.iterdir()):
        target = site / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.replace(target)
    shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    # `make wheels`: fill the checkout's wheel cache, so a plain `mkosi build` (sandboxed,
    # without network) can install the Python runtime.
    print(download_wheels(LOCK_PATH))
