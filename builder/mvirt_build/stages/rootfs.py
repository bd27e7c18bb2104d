"""Rootfs stage: mkosi builds a Debian bookworm tree (python3, the project's services,
mkosi.extra/), then the wheels of the Python runtime lock (requirements/runtime.lock) are
installed into it. The tree is kept in the cache by the digest of its inputs; build/rootfs.json
names it, with a digest of its content and its package list."""

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from mvirt_build import mkosi_config, mkosi_sources, pylock, tools
from mvirt_build.config import BuildConfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Stage
from mvirt_build.hashing import atomic_write, sha256_text, tree_digest
from mvirt_build.locking import locked
from mvirt_build.run import run

log = logging.getLogger("mvirt_build")

KEEP_TREES = 2
PACKAGE_LOCK = "rootfs.lock"


class RootfsStage(Stage):
    """Build (or adopt) the Debian tree the initramfs is cut from."""

    name = "rootfs"
    # 4: the locked Python runtime is installed into the tree.
    version = 4
    # What dates the tree: mkosi's configuration and the trees it copies in.
    sources = (*mkosi_config.CONVENTIONAL, "services/mvirt")
    description = "Debian bookworm tree built by mkosi from mkosi.conf and mkosi.extra/"

    def content_inputs(self, ctx: Context) -> dict[str, str]:
        """What the tree is made from (the cache key of the tree)."""
        root = ctx.config.root
        # mkosi's repositories come from the machine's mirrors, written before they are read
        # (a file of mkosi.pkgmngr/, so an input below). A tree handed over was built from the
        # sources already there: they are left as they are.
        if ctx.config.rootfs_tree is None and (root / "mkosi.conf").is_file():
            mkosi_sources.write(root, ctx.config.apt_dir)
        image = mkosi_config.summary(root, ctx.config.cache_dir)
        found = mkosi_config.rootfs_inputs(root, image, ctx.digests.tree, ctx.file_input)
        found["tool mkosi"] = tools.identity("mkosi")
        lock = root / pylock.LOCK_PATH
        found["python lock"] = ctx.file_input(lock) if lock.is_file() else "none"
        return found

    def inputs(self, ctx: Context) -> dict[str, str]:
        # A tree pruned from the cache makes the stage stale through output_problems(); it is
        # not an input, since the stage's own record (its output) names the tree.
        return self.content_inputs(ctx)

    def outputs(self, ctx: Context) -> list[Path]:
        return [record_path(ctx.config)]

    def output_problems(self, ctx: Context) -> list[str]:
        """The tree is an output too: gone (pruned, deleted) or replaced by a tree the user
        hands over (`--tree`, after `mkosi build`), the stage must run again."""
        try:
            tree = recorded_tree(ctx)
        except BuildError:
            return []  # no record: the graph already calls the stage stale
        problems = []
        if not (tree / "usr/bin/python3").exists():
            problems.append(f"rootfs tree {tree} is missing")
        given = ctx.config.rootfs_tree
        if given is not None and str(given) != read_record(ctx).get("given"):
            problems.append(f"a different tree was given ({given})")
        return problems

    def summary(self, ctx: Context) -> str:
        info = read_record(ctx)
        packages = info["packages"]
        return f"{len(packages) if isinstance(packages, list) else 0} packages, tree {info['tree']}"

    def build(self, ctx: Context) -> None:
        given = ctx.config.rootfs_tree
        lock = ctx.config.root / pylock.LOCK_PATH

        def with_python(make: Callable[[Path], None]) -> Callable[[Path], None]:
            """`make`, then the locked Python runtime installed into the tree it made."""

            def made(work: Path) -> None:
                make(work)
                if lock.is_file():  # a checkout without one gets the distribution's Python only
                    log.info("rootfs     installing the Python runtime (%s)", pylock.LOCK_PATH)
                    pylock.install_into_tree(lock, work / "tree")

            return made

        if given is not None:
            if not (given / "usr/bin/python3").exists():
                raise BuildError(
                    f"rootfs {given} has no /usr/bin/python3", "add python3 to mkosi.conf"
                )
            tree, manifest = self._in_cache(ctx, with_python(lambda work: adopt(given, work)))
        else:
            tree, manifest = self._in_cache(ctx, with_python(lambda work: run_mkosi(ctx, work)))
        packages = read_packages(manifest)
        check_package_lock(ctx.config, packages)
        if lock.is_file():
            pins = pylock.parse_lock(lock.read_text())
            packages += [f"python:{pin.name}={pin.version}" for pin in pins]
        root = ctx.config.root
        # A tree inside the checkout (a cache in .cache/ when mkosi.postoutput runs in mkosi's
        # sandbox) is named relative to it, so the record holds inside the sandbox and out.
        named = tree.relative_to(root) if tree.is_relative_to(root) else tree
        record = {
            "tree": str(named),
            "given": str(given) if given is not None else None,
            "digest": content_digest(ctx, tree),
            "packages": packages,
        }
        path = record_path(ctx.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(record, indent=1, sort_keys=True) + "\n")

    def _in_cache(self, ctx: Context, make: Callable[[Path], None]) -> tuple[Path, Path]:
        """The tree and manifest for the current inputs from the cache, made there with
        `make(work folder)` (which leaves `tree` and `manifest.json` in it) when missing."""
        keyed = {**self.inputs(ctx), "stage version": str(self.version)}
        key = sha256_text(json.dumps(keyed, sort_keys=True))[:24]
        store = ctx.config.cache_dir / "rootfs"
        dest = store / key
        with locked(tree_lock(ctx.config, key), "the rootfs cache", wait=True):
            if (dest / "tree/usr/bin/python3").exists():
                log.info("rootfs     found in the cache (%s)", dest)
                os.utime(dest)  # most recently used
                return dest / "tree", dest / "manifest.json"
            work = store / (key + ".tmp")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            make(work)
            shutil.rmtree(dest, ignore_errors=True)
            work.replace(dest)
        prune(ctx.config, keep=dest)
        return dest / "tree", dest / "manifest.json"


def run_mkosi(ctx: Context, work: Path) -> None:
    """Build the tree with mkosi into `work`."""
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
    # mkosi names its output by Output= (and the manifest after it).
    name = mkosi_config.summary(ctx.config.root, ctx.config.cache_dir).get("Output") or "rootfs"
    (work / name).replace(work / "tree")
    (work / f"{name}.manifest").replace(work / "manifest.json")


def adopt(given: Path, work: Path) -> None:
    """Copy a tree mkosi built elsewhere (`mkosi build`, handed over by mkosi.postoutput) into
    `work`: its staging folder is gone once mkosi finishes, the cache entry stays."""
    run(["cp", "-a", "--reflink=auto", str(given), str(work / "tree")])
    manifest = given.with_suffix(".manifest")
    if manifest.is_file():
        shutil.copyfile(manifest, work / "manifest.json")


def record_path(config: BuildConfig) -> Path:
    """build/rootfs.json: which tree the later stages use."""
    return config.output_dir / "rootfs.json"


def content_digest(ctx: Context, tree: Path) -> str:
    """The digest of everything in `tree`; for a cache entry computed once and kept beside it
    (reading a whole tree again costs a minute on a busy machine)."""
    entry = tree.parent
    if entry.parent != ctx.config.cache_dir / "rootfs":
        return tree_digest(tree)
    kept = entry / "tree.sha256"
    try:
        return kept.read_text().strip()
    except OSError:
        digest = tree_digest(tree)
        atomic_write(kept, digest + "\n")
        return digest


def tree_lock(config: BuildConfig, key: str) -> Path:
    """The lock of cache entry `key`: held exclusively while it is made or pruned, shared
    while a build reads its tree."""
    return config.cache_dir / "locks" / f"rootfs-{key}"


def read_record(ctx: Context) -> dict[str, object]:
    """The rootfs record, or a readable error when the rootfs was never built."""
    try:
        data: dict[str, object] = json.loads(record_path(ctx.config).read_text())
        return data
    except (OSError, ValueError) as exc:
        raise BuildError("the rootfs has not been built", "run `mvirt-build rootfs`") from exc


def recorded_tree(ctx: Context) -> Path:
    """The tree the rootfs record names (relative names are inside the checkout)."""
    return ctx.config.root / str(read_record(ctx)["tree"])


@contextmanager
def using_tree(ctx: Context) -> Iterator[Path]:
    """The tree of the current rootfs build, kept from pruning (shared lock) while in use and
    marked as used most recently."""
    tree = recorded_tree(ctx)
    entry = tree.parent
    with ExitStack() as stack:
        if entry.parent == ctx.config.cache_dir / "rootfs":  # a cache entry, not a given tree
            lock = tree_lock(ctx.config, entry.name)
            stack.enter_context(locked(lock, "the rootfs tree", wait=True, shared=True))
            if entry.is_dir():
                os.utime(entry)
        if not (tree / "usr/bin/python3").exists():
            raise BuildError(f"rootfs tree {tree} is gone", "run `mvirt-build rootfs`")
        yield tree


def package_lock_path(config: BuildConfig) -> Path:
    """rootfs.lock: the package set of the last accepted rootfs, one `name=version` a line."""
    return config.root / PACKAGE_LOCK


def read_package_lock(path: Path) -> dict[str, str] | None:
    """Package → version from a rootfs.lock (None when there is none)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("=")
        if not sep or not name or not version:
            raise BuildError(f"{path}:{number}: expected name=version, not {raw!r}")
        found[name] = version
    return found


def package_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Readable differences between two package sets: upgrades, additions, removals."""
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            changes.append(f"{name} {old[name]} removed")
        elif name not in old:
            changes.append(f"{name} {new[name]} added")
        elif old[name] != new[name]:
            changes.append(f"{name} {old[name]} -> {new[name]}")
    return changes


def check_package_lock(config: BuildConfig, packages: list[str]) -> None:
    """Compare the tree's packages with rootfs.lock: refuse other versions with --locked, else
    name them and record the new set (to commit). The first build writes the lock."""
    path = package_lock_path(config)
    new = dict(p.partition("=")[::2] for p in packages)
    old = read_package_lock(path)
    if old == new:
        return
    changes = package_changes(old or {}, new)
    if old is not None and config.locked:
        listing = "\n".join(f"  {c}" for c in changes[:40])
        raise BuildError(
            f"the rootfs resolved other packages than {PACKAGE_LOCK} ({len(changes)} change(s)):"
            f"\n{listing}",
            f"build without --locked to accept them, then commit {PACKAGE_LOCK}",
        )
    if old is not None:
        log.warning(
            "rootfs     packages differ from %s (%d change(s)):", PACKAGE_LOCK, len(changes)
        )
        for change in changes:
            log.warning("rootfs       %s", change)
    header = "# The rootfs package set (name=version), written by mvirt-build rootfs.\n"
    atomic_write(path, header + "".join(f"{n}={v}\n" for n, v in sorted(new.items())))
    log.info("rootfs     %s records %d packages", PACKAGE_LOCK, len(new))


def read_packages(manifest: Path) -> list[str]:
    """`name=version` of every package mkosi installed, from its JSON manifest."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    return sorted(f"{p['name']}={p['version']}" for p in data.get("packages", []))


def prune(config: BuildConfig, keep: Path) -> None:
    """Keep the most recently used few trees in the cache (a tree costs a few hundred MB);
    never remove one another build is using or making (its lock is held)."""
    store = config.cache_dir / "rootfs"
    trees = sorted(
        (p for p in store.iterdir() if p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    for old in trees[KEEP_TREES:]:
        if old == keep:
            continue
        try:
            with locked(tree_lock(config, old.name), "a rootfs cache entry"):
                shutil.rmtree(old, ignore_errors=True)
        except BuildError:
            log.info("rootfs     keeping %s: another build is using it", old)
