"""Rootfs stage: mkosi builds a Debian bookworm tree (python3, the project's services,
mkosi.extra/), then the wheels of the Python runtime lock (requirements/runtime.lock) are
installed into it. The tree is kept in the cache by the digest of its inputs; build/rootfs.json
names it, with a digest of its content and its package list."""

import json
import logging
import os
import shutil
from pathlib import Path

from mvirt_build import pylock
from mvirt_build.config import BuildConfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Stage
from mvirt_build.hashing import sha256_text, tree_digest
from mvirt_build.locking import locked
from mvirt_build.run import output, run

log = logging.getLogger("mvirt_build")

# Everything mkosi reads, relative to the project root.
MKOSI_FILES = ("mkosi.conf", "mkosi.postinst", "mkosi.finalize", "mkosi.postoutput")
MKOSI_TREES = ("mkosi.conf.d", "mkosi.extra", "mkosi.pkgmngr", "services/mvirt")
KEEP_TREES = 2


class RootfsStage(Stage):
    """Build (or adopt) the Debian tree the initramfs is cut from."""

    name = "rootfs"
    description = "Debian bookworm tree built by mkosi from mkosi.conf and mkosi.extra/"

    def content_inputs(self, ctx: Context) -> dict[str, str]:
        """What the tree is made from (the cache key of the tree)."""
        root = ctx.config.root
        found: dict[str, str] = {}
        for name in MKOSI_FILES:
            if (root / name).exists():
                found[name] = ctx.file_input(root / name)
        for name in MKOSI_TREES:
            if (root / name).is_dir():
                found[name + "/"] = ctx.digests.tree(root / name)
        found["python lock"] = ctx.file_input(root / pylock.LOCK_PATH)
        found["mkosi"] = mkosi_version()
        found["builder code"] = ctx.code_input("stages/rootfs.py", "pylock.py")
        if ctx.config.rootfs_tree:
            found["tree given"] = str(ctx.config.rootfs_tree)
        return found

    def inputs(self, ctx: Context) -> dict[str, str]:
        """The content inputs plus whether the recorded tree is still in the cache: builds
        sharing the cache prune old trees, and a rootfs whose tree is gone is built again."""
        found = self.content_inputs(ctx)
        try:
            tree = Path(str(read_record(ctx)["tree"]))
        except BuildError:
            return found
        found["tree in the cache"] = "present" if (tree / "usr/bin/python3").exists() else "gone"
        return found

    def outputs(self, ctx: Context) -> list[Path]:
        return [record_path(ctx.config)]

    def summary(self, ctx: Context) -> str:
        info = read_record(ctx)
        packages = info["packages"]
        return f"{len(packages) if isinstance(packages, list) else 0} packages, tree {info['tree']}"

    def build(self, ctx: Context) -> None:
        if ctx.config.rootfs_tree:
            tree, manifest = ctx.config.rootfs_tree, ctx.config.rootfs_tree.with_suffix(".manifest")
            pylock.install_into_tree(ctx.config.root / pylock.LOCK_PATH, tree, ctx.config.cache_dir)
        else:
            tree, manifest = self._run_mkosi(ctx)
        if not (tree / "usr/bin/python3").exists():
            raise BuildError(f"rootfs {tree} has no /usr/bin/python3", "add python3 to mkosi.conf")
        lock = ctx.config.root / pylock.LOCK_PATH
        packages = read_packages(manifest) + [
            f"python:{pin.name}={pin.version}" for pin in pylock.parse_lock(lock.read_text())
        ]
        record = {"tree": str(tree), "digest": tree_digest(tree), "packages": packages}
        path = record_path(ctx.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")

    def _run_mkosi(self, ctx: Context) -> tuple[Path, Path]:
        key = sha256_text(json.dumps(self.content_inputs(ctx), sort_keys=True))[:24]
        with locked(
            ctx.config.cache_dir / "locks" / f"rootfs-{key}", "the rootfs cache", wait=True
        ):
            return self._cached_or_built(ctx, key)

    def _cached_or_built(self, ctx: Context, key: str) -> tuple[Path, Path]:
        store = ctx.config.cache_dir / "rootfs"
        dest = store / key
        if (dest / "tree/usr/bin/python3").exists():
            log.info("rootfs     found in the cache (%s)", dest)
            return dest / "tree", dest / "manifest.json"
        work = store / (key + ".tmp")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        verbose = logging.getLogger("mvirt_build").isEnabledFor(logging.DEBUG)
        run(
            [
                "mkosi",
                "--directory", str(ctx.config.root),
                "--output-dir", str(work),
                "--package-cache-dir", str(ctx.config.cache_dir / "mkosi-packages"),
                "--environment", "MVIRT_BUILDER=1",
                "--force",
                "build",
            ],
            stream=verbose,
            hint="mkosi 24 from bookworm-backports is needed (scripts/bootstrap.sh installs it)",
        )  # fmt: skip
        log.info("rootfs     installing the Python runtime lock (%s)", pylock.LOCK_PATH)
        pylock.install_into_tree(
            ctx.config.root / pylock.LOCK_PATH, work / "rootfs", ctx.config.cache_dir
        )
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        (work / "rootfs").replace(dest / "tree")
        (work / "rootfs.manifest").replace(dest / "manifest.json")
        shutil.rmtree(work, ignore_errors=True)
        prune(store, keep=dest)
        return dest / "tree", dest / "manifest.json"


def record_path(config: BuildConfig) -> Path:
    """build/rootfs.json: which tree the later stages use."""
    return config.output_dir / "rootfs.json"


def read_record(ctx: Context) -> dict[str, object]:
    """The rootfs record, or a readable error when the rootfs was never built."""
    try:
        data: dict[str, object] = json.loads(record_path(ctx.config).read_text())
        return data
    except (OSError, ValueError) as exc:
        raise BuildError("the rootfs has not been built", "run `mvirt-build rootfs`") from exc


def rootfs_tree(ctx: Context) -> Path:
    """The tree of the current rootfs build."""
    tree = Path(str(read_record(ctx)["tree"]))
    if not tree.is_dir():
        raise BuildError(f"rootfs tree {tree} is gone", "run `mvirt-build rootfs --force`")
    return tree


def mkosi_version() -> str:
    """`mkosi --version`, or 'missing'."""
    try:
        return output(["mkosi", "--version"])
    except BuildError:
        return "missing"


def read_packages(manifest: Path) -> list[str]:
    """`name=version` of every package mkosi installed, from its JSON manifest."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    return sorted(f"{p['name']}={p['version']}" for p in data.get("packages", []))


def prune(store: Path, keep: Path) -> None:
    """Keep the newest few trees in the cache; a tree costs a few hundred MB."""
    trees = sorted(
        (p for p in store.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in trees[KEEP_TREES:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
    os.utime(keep)
