"""mkosi's own resolved configuration (`mkosi --json summary`): what the rootfs is built from
(mkosi.conf, mkosi.conf.d/ drop-ins, mkosi.local.conf, mkosi.skeleton/, mkosi.extra/, the
mkosi.prepare/build/postinst/finalize scripts) and the settings mkosi has keys for
(SecureBootKey=, SecureBootCertificate=, KernelCommandLine=, ImageId=, ImageVersion=, Output=).

Running mkosi costs over a second, so the summary is kept in a small cache keyed by the
identity (path, size, mtime, inode) of every configuration file and by which of mkosi's
conventional paths exist; a no-op build only stats them.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from mvirt_build import tools
from mvirt_build.errors import BuildError
from mvirt_build.hashing import atomic_write, sha256_text

# Paths mkosi reads from the project folder by convention (their existence changes the summary).
CONVENTIONAL = (
    "mkosi.conf", "mkosi.local.conf", "mkosi.conf.d", "mkosi.skeleton", "mkosi.extra",
    "mkosi.pkgmngr", "mkosi.prepare", "mkosi.prepare.chroot", "mkosi.build",
    "mkosi.build.chroot", "mkosi.postinst", "mkosi.postinst.chroot", "mkosi.finalize",
    "mkosi.finalize.chroot", "mkosi.postoutput", "mkosi.key", "mkosi.crt", "mkosi.version",
    "mkosi.images", "mkosi.repart", "mkosi.tools.conf", "mkosi.sandbox",
)  # fmt: skip
TREE_KEYS = ("SkeletonTrees", "ExtraTrees", "PackageManagerTrees")
SCRIPT_KEYS = ("PrepareScripts", "BuildScripts", "PostInstallationScripts", "FinalizeScripts")
# Settings the builder reads for the UKI (not the rootfs), where things go rather than what the
# tree holds, and Seed= (random on every run unless set; it seeds disk partitioning, which a
# directory tree has none of): left out of the rootfs stage's input.
NOT_ROOTFS = frozenset({"KernelCommandLine", "SecureBootKey", "SecureBootCertificate",
                        "SecureBootKeySource", "Output", "PostOutputScripts", "SourceDateEpoch",
                        "BuildSources", "RuntimeBuildSources", "Seed"})  # fmt: skip


# Variables mkosi adds to Environment= from the host: the terminal, and the proxy's CA
# certificate when the host has a proxy (then missing inside mkosi's own sandbox).
HOST_ENVIRONMENT = frozenset({"TERM", "GIT_PROXY_SSL_CAINFO"})


def _config_identity(root: Path) -> str:
    """What the summary depends on: the configuration files' identities, which conventional
    paths exist, and the mkosi binary."""
    parts: list[str] = [str(root), tools.identity("mkosi")]
    for name in CONVENTIONAL:
        path = root / name
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{name} {st.st_mode:o} {st.st_size} {st.st_mtime_ns} {st.st_ino}")
    dropins = root / "mkosi.conf.d"
    if dropins.is_dir():
        for dirpath, dirnames, filenames in os.walk(dropins):
            dirnames.sort()
            for name in sorted(filenames):
                st = (Path(dirpath) / name).stat()
                rel = (Path(dirpath) / name).relative_to(root)
                parts.append(f"{rel} {st.st_size} {st.st_mtime_ns} {st.st_ino}")
    return sha256_text("\n".join(parts))


def _cache_file(cache_dir: Path, root: Path) -> Path:
    return cache_dir / "mkosi-summary" / f"{sha256_text(str(root))[:16]}.json"


def summary(root: Path, cache_dir: Path) -> dict[str, Any]:
    """The main image's resolved configuration, project paths written relative to `root`
    ("./mkosi.extra"); {} when the project has no mkosi.conf."""
    if not (root / "mkosi.conf").is_file():
        return {}
    key = _config_identity(root)
    cache = _cache_file(cache_dir, root)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            result: dict[str, Any] = cached["summary"]
            return result
    except (OSError, ValueError, KeyError):
        pass
    argv = ["mkosi", "--directory", str(root), "--json", "summary"]
    try:
        # stdout only: mkosi says things on stderr that are not part of the JSON.
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError(
            "mkosi: command not found",
            "mkosi 24 from bookworm-backports is needed (scripts/bootstrap.sh installs it)",
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join(f"    {line}" for line in proc.stderr.strip().splitlines()[-15:])
        raise BuildError(f"`{shlex.join(argv)}` failed with exit status {proc.returncode}\n{tail}")
    text = proc.stdout
    try:
        images = json.loads(text)["Images"]
        raw = json.dumps(images[-1]).replace(f'"{root}/', '"./').replace(f'"{root}"', '"."')
        image: dict[str, Any] = json.loads(raw)
    except (ValueError, KeyError, IndexError) as exc:
        raise BuildError(f"cannot read `mkosi --json summary` of {root}: {exc}") from exc
    atomic_write(cache, json.dumps({"key": key, "summary": image}))
    return image


def local_path(root: Path, value: str | None) -> Path | None:
    """A path from the summary ("./x" inside the project, or absolute) as a real path."""
    if not value:
        return None
    return root / value[2:] if value.startswith("./") else Path(value)


def rootfs_inputs(
    root: Path, image: dict[str, Any], tree_digest: Any, file_digest: Any
) -> dict[str, str]:
    """The rootfs stage's inputs: mkosi's resolved configuration (without host-specific
    values), and the content of every tree and script it names."""
    settings = {
        key: value
        for key, value in image.items()
        if key not in NOT_ROOTFS
        and not key.endswith(("Directory", "Directories"))
        and not key.startswith("Proxy")  # how packages are fetched (from the host's proxy)
    }
    environment = settings.get("Environment")
    if isinstance(environment, dict):  # what mkosi took from the host's environment is not ours
        settings["Environment"] = {
            k: v for k, v in environment.items() if k not in HOST_ENVIRONMENT
        }
    found = {"mkosi configuration": sha256_text(json.dumps(settings, sort_keys=True))}
    for key in TREE_KEYS:
        for tree in image.get(key) or []:
            path = local_path(root, tree.get("Source"))
            if path is not None:
                target = tree.get("Target") or "/"
                found[f"{key} {tree['Source']} -> {target}"] = (
                    tree_digest(path) if path.is_dir() else file_digest(path)
                )
    for key in SCRIPT_KEYS:
        for script in image.get(key) or []:
            path = local_path(root, script)
            if path is not None:
                found[f"{key} {script}"] = file_digest(path)
    return found
