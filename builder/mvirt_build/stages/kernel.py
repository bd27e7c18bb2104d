"""Kernel stage: tinyconfig + the fragment + olddefconfig, verified, built into a bzImage.

The extracted source and the object tree live in the cache (outside the work tree) and the
finished bzImage is cached by the digest of its inputs, so a fresh clone or a CI run on the same
machine never builds the same kernel twice.
"""

import json
import logging
import os
import shutil
from pathlib import Path

from mvirt_build import kconfig, tools
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Stage
from mvirt_build.hashing import sha256_text
from mvirt_build.locking import locked
from mvirt_build.run import output, run

log = logging.getLogger("mvirt_build")

ARCH = "x86_64"
# A fixed build identity: the kernel's banner must not depend on when or where it was built.
KBUILD_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 1970",
    "KBUILD_BUILD_USER": "mvirt",
    "KBUILD_BUILD_HOST": "mvirt",
    "KBUILD_BUILD_VERSION": "1",
}
ARTIFACTS = ("bzImage", "config", "release")
# The compiler and binutils shape the bzImage; keyed by their binaries' identity.
TOOLS = ("gcc", "as", "ld")


def source_tarball(ctx: Context) -> Path:
    """The kernel source tarball on disk (a local file; URLs go through the fetcher)."""
    source = ctx.config.kernel.source
    if "://" in source:
        raise BuildError(
            f"kernel source {source} is a URL; this build reads local tarballs only",
            "set [Kernel] Source= in mvirt-build.conf to a local tarball, e.g. Debian's "
            "/usr/src/linux-source-6.1.tar.xz (apt-get install linux-source-6.1)",
        )
    path = Path(source)
    if not path.is_file():
        raise BuildError(
            f"kernel source tarball {path} not found",
            "apt-get install linux-source-6.1 (or run scripts/bootstrap.sh)",
        )
    return path


class KernelStage(Stage):
    """Configure and build the kernel."""

    name = "kernel"
    # Raise when a change to this module or kconfig.py changes what the stage produces.
    version = 1
    sources = ("kernel", "mvirt-build.conf")
    description = "Linux kernel (bzImage) from the source tarball and kernel/kernel.config"

    def inputs(self, ctx: Context) -> dict[str, str]:
        cfg = ctx.config.kernel
        return {
            "kernel source": ctx.file_input(source_tarball(ctx)),
            "kernel/kernel.config": fragment_digest(ctx),
            "kernel version": cfg.version,
            "build identity": json.dumps(KBUILD_ENV, sort_keys=True),
            **tools.identities(TOOLS),
        }

    def cache_key(self, ctx: Context) -> str:
        """Names the finished kernel in the shared cache: its inputs and the stage version."""
        keyed = {**self.inputs(ctx), "stage version": str(self.version)}
        return sha256_text(json.dumps(keyed, sort_keys=True))[:24]

    def outputs(self, ctx: Context) -> list[Path]:
        return [self.out_dir(ctx) / name for name in ARTIFACTS]

    @staticmethod
    def out_dir(ctx: Context) -> Path:
        """build/kernel: bzImage, the resolved config, the release string."""
        return ctx.config.output_dir / "kernel"

    def summary(self, ctx: Context) -> str:
        out = self.out_dir(ctx)
        size = (out / "bzImage").stat().st_size
        return f"{(out / 'release').read_text().strip()}, bzImage {size / 2**20:.1f} MiB"

    # -- building ----------------------------------------------------------------------------

    def build(self, ctx: Context) -> None:
        key = self.cache_key(ctx)
        cached = ctx.config.cache_dir / "kernel" / key
        if not all((cached / name).is_file() for name in ARTIFACTS):
            source = extract_source(ctx)
            with locked(
                ctx.config.cache_dir / "locks" / f"kernel-build-{source.parent.name}",
                "the kernel build tree",
                wait=True,
            ):
                if all((cached / name).is_file() for name in ARTIFACTS):
                    self._install(ctx, cached)  # another build made it while we waited
                    return
                build_dir = build_tree(ctx, source)
                configure(ctx, source, build_dir)
                log.info("kernel     compiling (about 10 minutes on 2 cores; -v shows progress)")
                make(ctx, source, build_dir, f"-j{os.cpu_count() or 1}", "bzImage")
                release = output(make_cmd(source, build_dir, "-s", "kernelrelease"), env=KBUILD_ENV)
                tmp = cached.with_name(cached.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                shutil.copyfile(build_dir / "arch/x86/boot/bzImage", tmp / "bzImage")
                shutil.copyfile(build_dir / ".config", tmp / "config")
                (tmp / "release").write_text(release + "\n")
                shutil.rmtree(cached, ignore_errors=True)
                tmp.replace(cached)
        else:
            log.info("kernel     found in the cache (%s)", cached)
        self._install(ctx, cached)

    def _install(self, ctx: Context, cached: Path) -> None:
        """Copy the cached artifacts into build/kernel/."""
        out = self.out_dir(ctx)
        out.mkdir(parents=True, exist_ok=True)
        for name in ARTIFACTS:
            shutil.copyfile(cached / name, out / name)


def fragment_digest(ctx: Context) -> str:
    """The fragment's options, not its bytes: comments, blank lines and order do not count."""
    path = ctx.config.kernel.fragment
    try:
        text = path.read_text()
    except OSError as exc:
        raise BuildError(f"input file {path} does not exist") from exc
    options = kconfig.parse(text, str(path))
    return sha256_text(json.dumps(options, sort_keys=True))


def make_cmd(source: Path, build_dir: Path, *args: str) -> list[str]:
    """A `make` invocation for the out-of-tree kernel build."""
    return ["make", "-C", str(source), f"O={build_dir}", f"ARCH={ARCH}", *args]


def make(ctx: Context, source: Path, build_dir: Path, *args: str) -> None:
    """Run make in the kernel tree; output shown with -v, else only on failure."""
    verbose = logging.getLogger("mvirt_build").isEnabledFor(logging.DEBUG)
    run(
        make_cmd(source, build_dir, *([] if verbose else ["-s"]), *args),
        env=KBUILD_ENV,
        stream=verbose,
        hint="kernel build dependencies: apt-get install build-essential bc bison flex "
        "libelf-dev libssl-dev",
    )


def extract_source(ctx: Context) -> Path:
    """Extract the tarball once into the cache (keyed by its digest); return the source dir."""
    tarball = source_tarball(ctx)
    digest = ctx.file_input(tarball)
    dest = ctx.config.cache_dir / "kernel-src" / digest[:16]
    done = dest / ".extracted"
    with locked(dest.with_name(dest.name + ".lock"), "the kernel source cache", wait=True):
        if not done.exists():
            _extract(tarball, dest, done)
    source = dest / done.read_text().strip()
    check_version(ctx, source)
    return source


def _extract(tarball: Path, dest: Path, done: Path) -> None:
    """Unpack `tarball` into `dest` through a temporary folder; mark it complete with `done`."""
    log.info("kernel     extracting %s", tarball)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    run(["tar", "-xf", str(tarball), "-C", str(tmp)])
    shutil.rmtree(dest, ignore_errors=True)
    tmp.replace(dest)
    top = [p for p in dest.iterdir() if p.is_dir()]
    if len(top) != 1:
        raise BuildError(f"{tarball} does not hold exactly one top-level folder")
    done.write_text(top[0].name)


def source_version(source: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the kernel's top Makefile."""
    fields: dict[str, str] = {}
    with open(source / "Makefile") as f:
        for line in f:
            key, _, value = line.partition("=")
            if key.strip() in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
                fields[key.strip()] = value.strip()
            if len(fields) == 3:
                break
    return f"{fields.get('VERSION')}.{fields.get('PATCHLEVEL')}.{fields.get('SUBLEVEL')}"


def check_version(ctx: Context, source: Path) -> None:
    """The tarball must hold the version kernel/kernel.version asks for."""
    found = source_version(source)
    wanted = ctx.config.kernel.version
    if found != wanted and not found.startswith(wanted + "."):
        raise BuildError(
            f"kernel source is {found} but kernel/kernel.version asks for {wanted}",
            "point [Kernel] Source= at a matching tarball or change kernel/kernel.version",
        )


def build_tree(ctx: Context, source: Path) -> Path:
    """The object tree for this source (kept between builds for incremental rebuilds)."""
    path = ctx.config.cache_dir / "kernel-build" / source.parent.name
    path.mkdir(parents=True, exist_ok=True)
    return path


def configure(ctx: Context, source: Path, build_dir: Path, verify: bool = True) -> None:
    """tinyconfig, merge the fragment, olddefconfig, then (with `verify`) check that Kconfig
    kept every fragment option."""
    fragment_path = ctx.config.kernel.fragment
    fragment = kconfig.parse(fragment_path.read_text(), str(fragment_path))
    make(ctx, source, build_dir, "tinyconfig")
    config = build_dir / ".config"
    config.write_text(kconfig.merge(config.read_text(), fragment))
    make(ctx, source, build_dir, "olddefconfig")
    if verify:
        kconfig.verify(config, fragment)


def menuconfig(ctx: Context) -> dict[str, str]:
    """Run `make menuconfig` on the configured tree and write what changed into the fragment."""
    source = extract_source(ctx)
    with locked(
        ctx.config.cache_dir / "locks" / f"kernel-build-{source.parent.name}",
        "the kernel build tree",
        wait=True,
    ):
        build_dir = build_tree(ctx, source)
        # No verification here: menuconfig is how a user fixes options Kconfig dropped.
        configure(ctx, source, build_dir, verify=False)
        config = build_dir / ".config"
        before = kconfig.parse(config.read_text())
        run(make_cmd(source, build_dir, "menuconfig"), capture=False)
        after = kconfig.parse(config.read_text())
    changed = kconfig.changed_options(before, after)
    if changed:
        path = ctx.config.kernel.fragment
        path.write_text(kconfig.write_back(path.read_text(), changed, "Changed with menuconfig"))
    return changed
