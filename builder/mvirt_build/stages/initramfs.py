"""Initramfs stage: cut the running system out of the rootfs tree into a compressed cpio
(zstd, or lz4 in the kernel's legacy format: `[Initramfs] Compression=`).

Contents: /init, the image's Python interpreter and only the shared libraries it and its
extension modules need (DT_NEEDED closure), the modules the runtime imports as bytecode (no
sources, tests or docs), the services, and the skeleton of mkosi.extra/. The services files
(/etc/pideisn/*.toml) are also stored parsed, for a faster boot (services_compile). With
`UsrImage=squashfs`, /usr goes into one compressed image that pideisn mounts (usr_image), and
the archive keeps only what PID 1 needs before that.
"""

import ast
import base64
import json
import logging
import os
import shutil
import stat
import tempfile
from importlib.metadata import version
from pathlib import Path

import lz4.block
import zstandard

from mvirt_build import budget, tools, usr_image
from mvirt_build.budget import COMPONENTS
from mvirt_build.compare import LZ4_LEGACY_CHUNK, LZ4_LEGACY_MAGIC
from mvirt_build.config import BuildConfig, initramfs_image
from mvirt_build.cpio import Archive, Entry
from mvirt_build.errors import BuildError
from mvirt_build.fetch import FetchReport
from mvirt_build.graph import Context, Stage
from mvirt_build.hashing import atomic_write
from mvirt_build.run import output
from mvirt_build.services_compile import add_compiled_services
from mvirt_build.stages.release import (
    add_downloads,
    downloads_input,
    downloads_path,
    fetch_downloads,
)
from mvirt_build.stages.rootfs import using_tree

log = logging.getLogger("mvirt_build")

SITE_DIR = "/usr/lib/python3/dist-packages"
INTERPRETER = "/usr/bin/python3"
SKELETON_DIRS = {"/dev": 0o755, "/proc": 0o555, "/sys": 0o555, "/run": 0o755, "/tmp": 0o1777,
                 "/root": 0o700, "/var": 0o755, "/etc": 0o755, "/mnt": 0o755}  # fmt: skip
DEVICES = {"/dev/console": (0o600, (5, 1)), "/dev/null": (0o666, (1, 3))}
# Debian's links into the RAM-backed /run (zfs-fuse keeps its socket and lock there).
SKELETON_LINKS = {"/var/run": "/run", "/var/lock": "/run/lock"}
# The whole environment of the image's interpreter when it collects modules: nothing of the
# host's (PYTHONPATH, PYTHONSTARTUP, ...) may change what goes into the image. The flags are
# those of -I (isolated) except -E: that would also drop PYTHONHASHSEED=0, which keeps the
# order of frozenset constants in the bytecode, and so the archive, reproducible.
CHROOT_FLAGS = ("-s", "-P", "-S")
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}
# The API client CA of `mvirt-build genkey`: the daemons' --tls-client-ca in the image.
API_CA_KEY_FILE = "keys/api-ca.crt"
API_CA_IMAGE_PATH = "/etc/mvirt/api-ca.crt"


def init_script(init: str) -> bytes:
    """/init: the kernel runs it as PID 1 (BINFMT_SCRIPT); -S skips site for a fast start.

    The import of the init module is guarded: if it fails, or the module's function returns or
    raises, /init runs the rescue loop of `init_rescue.py` (kept as a string, compiled only
    then), so PID 1 never exits and the power button still powers off.
    """
    module, _, function = init.partition(":")
    rescue = (Path(__file__).parents[1] / "init_rescue.py").read_text()
    return (
        f"#!{INTERPRETER} -S\n"
        "import sys\n"
        f"sys.path.append({SITE_DIR!r})\n"
        "try:\n"
        f"    from {module} import {function}\n"
        "except BaseException as exc:\n"
        f"    why = f'cannot import {module}: {{exc!r}}'\n"
        "else:\n"
        "    try:\n"
        f"        {function}()\n"
        f"        why = '{init} returned'\n"
        "    except BaseException as exc:\n"
        f"        why = f'{init} failed: {{exc!r}}'\n"
        f"RESCUE = {rescue!r}\n"
        "scope = {}\n"
        "exec(compile(RESCUE, '/init (rescue)', 'exec'), scope)\n"
        "scope['rescue'](why)\n"
    ).encode()


class InitramfsStage(Stage):
    """Assemble and compress the initramfs."""

    name = "initramfs"
    # 2: /init guards the import of pideisn with a rescue loop; lz4 as a compression.
    # 3: the API client CA, extra trees, the size budget per component.
    # 4: the module collector's own bytecode stays out.
    # 5: services files also stored parsed (services_compile), tomllib for the fallback;
    #    ELF files of ExtraFiles= bring their shared-library closure; /var/run, /var/lock.
    # 6: ELF files lose their symbol tables and debug sections (mvirt_build.elfstrip).
    # 7: UsrImage=squashfs (mvirt_build.usr_image).
    version = 7
    deps = ("rootfs",)
    sources = ("mvirt-build.conf", "downloads.lock", "mkosi.extra")
    description = "compressed cpio: /init, Python runtime, imported modules, services, skeleton"

    def inputs(self, ctx: Context) -> dict[str, str]:
        cfg = ctx.config.initramfs
        return {
            "init": cfg.init,
            "modules": " ".join(cfg.modules),
            "extra modules": " ".join(cfg.extra_modules),
            "extra files": " ".join(cfg.extra_files),
            "compress level": str(cfg.compress_level),
            "compression": cfg.compression,
            "usr image": cfg.usr_image,
            "mkosi.extra/": ctx.digests.tree(ctx.config.root / "mkosi.extra"),
            # By content only: the same overlay from another folder builds the same image.
            "extra trees": " ".join(ctx.digests.tree(tree) for tree in ctx.config.extra_trees),
            "SOURCE_DATE_EPOCH": str(ctx.source_date_epoch(self.name)),
            "downloads": downloads_input(ctx),
            "api client CA": api_ca_input(ctx),
            "zstandard": f"{version('zstandard')} (zstd {zstandard.ZSTD_VERSION})",
            "lz4": version("lz4"),
            **tools.identities(("strip", usr_image.TOOL) if cfg.usr_image else ("strip",)),
        }

    def outputs(self, ctx: Context) -> list[Path]:
        return [
            image_path(ctx.config),
            listing_path(ctx.config),
            downloads_path(ctx.config),
            sizes_path(ctx.config),
        ]

    def summary(self, ctx: Context) -> str:
        return f"{image_path(ctx.config).stat().st_size / 2**20:.2f} MiB ({image_path(ctx.config)})"

    def __init__(self) -> None:
        self._downloads: FetchReport | None = None

    def prepare(self, ctx: Context) -> None:
        # Downloads land in their cache first: which of them are cached is an input.
        self._downloads = fetch_downloads(ctx)

    def build(self, ctx: Context) -> None:
        with using_tree(ctx) as tree:
            archive = assemble(ctx, tree)
            early = early_paths(ctx, tree, archive) if ctx.config.initramfs.usr_image else set()
        add_downloads(ctx, archive, self._downloads)
        add_api_ca(ctx, archive)
        for extra in ctx.config.extra_trees:  # last: an extra tree replaces what is there
            add_tree(archive, extra)
        add_compiled_services(archive)  # after the extra trees: from the TOML the image gets
        epoch = ctx.source_date_epoch(self.name)
        boot = usr_image.split(archive, early, epoch) if ctx.config.initramfs.usr_image else archive
        raw = boot.write(epoch)
        level = ctx.config.initramfs.compress_level
        compressed = compress(raw, ctx.config.initramfs.compression, level)
        atomic_write(image_path(ctx.config), compressed)
        atomic_write(listing_path(ctx.config), render_listing(boot, archive))
        sizes = budget.measure(((e.path, e.data) for e in archive.sorted_entries()), level)
        budget.write_sizes(sizes_path(ctx.config), sizes)
        for line in size_breakdown(sizes, len(raw), len(compressed)):
            log.info("initramfs  %s", line)


def api_ca_input(ctx: Context) -> str:
    """Stage input: the digest of keys/api-ca.crt, or "absent"."""
    path = ctx.config.root / API_CA_KEY_FILE
    return ctx.file_input(path) if path.is_file() else "absent"


def add_api_ca(ctx: Context, archive: Archive) -> None:
    """keys/api-ca.crt becomes /etc/mvirt/api-ca.crt (the only file of keys/ in the image)."""
    path = ctx.config.root / API_CA_KEY_FILE
    if not path.is_file():
        log.warning(
            "initramfs  WARNING: no %s: the image cannot accept API clients over TLS "
            "(mvirt.api=tls); run `mvirt-build genkey` to make the API client CA",
            API_CA_KEY_FILE,
        )
        return
    archive.add(Entry(API_CA_IMAGE_PATH, "file", 0o644, path.read_bytes()))


def image_path(config: BuildConfig) -> Path:
    """build/initramfs.cpio.zst, or .lz4 with Compression=lz4"""
    return initramfs_image(config)


def compress(raw: bytes, compression: str, level: int) -> bytes:
    """The archive compressed as the kernel unpacks it: a zstd frame, or the legacy lz4
    format (magic, then blocks of up to 8 MiB each preceded by its little-endian size).

    lz4 unpacks several times faster than zstd under emulation (measured in
    docs/pideisn.md), which is boot time, for a somewhat larger image.
    """
    if compression == "lz4":
        out = bytearray(LZ4_LEGACY_MAGIC)
        for start in range(0, len(raw), LZ4_LEGACY_CHUNK):
            block = lz4.block.compress(
                raw[start : start + LZ4_LEGACY_CHUNK],
                mode="high_compression",
                compression=min(max(level, 1), 12),
                store_size=False,
            )
            out += len(block).to_bytes(4, "little") + block
        return bytes(out)
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(raw)


def sizes_path(config: BuildConfig) -> Path:
    """build/initramfs.sizes.json: bytes per component (the UKI's size budget)."""
    return config.output_dir / "initramfs.sizes.json"


def listing_path(config: BuildConfig) -> Path:
    """build/initramfs.list: what the archive holds (`mvirt-build initramfs --list`)."""
    return config.output_dir / "initramfs.list"


def collect_modules(
    ctx: Context, tree: Path, names: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """Import the configured modules (or `names`) with the tree's own interpreter (in a chroot)
    and return the bytecode of every module that got loaded and the paths of extension
    modules."""
    cfg = ctx.config.initramfs
    if names is None:
        names = [cfg.init.partition(":")[0], *cfg.modules, *cfg.extra_modules]
    script = Path(__file__).parent.parent / "collect_modules.py"
    with tempfile.TemporaryDirectory(dir=tree / "tmp", prefix="mvirt-collect-") as tmp:
        shutil.copyfile(script, Path(tmp) / "collect_modules.py")
        inside = "/" + str((Path(tmp) / "collect_modules.py").relative_to(tree))
        text = output(
            ["chroot", str(tree), INTERPRETER, *CHROOT_FLAGS, inside, SITE_DIR, *names],
            env=CHROOT_ENV,
            clean_env=True,
            hint="the image's interpreter could not import the configured modules; "
            "is every dependency in mkosi.conf?",
        )
    result: dict[str, dict[str, str]] = json.loads(text)["modules"]
    # The collector itself (run as __main__ from a throw-away folder) is not part of the image.
    folder = "/" + str(Path(tmp).relative_to(tree))
    return {
        kind: {key: value for key, value in found.items() if not key.startswith(folder)}
        for kind, found in result.items()
    }


def assemble(ctx: Context, tree: Path) -> Archive:
    """Every entry of the initramfs, from the rootfs tree and the configuration."""
    archive = Archive()
    for path, mode in SKELETON_DIRS.items():
        archive.add(Entry(path, "dir", mode))
    for path, (mode, rdev) in DEVICES.items():
        archive.add(Entry(path, "chardev", mode, rdev=rdev))
    for path, target in SKELETON_LINKS.items():
        archive.add(Entry(path, "symlink", 0o777, target=target))
    archive.add(Entry("/init", "file", 0o755, init_script(ctx.config.initramfs.init)))

    from mvirt_build import elfdeps, elfstrip  # noqa: PLC0415 - pyelftools only when building

    modules = collect_modules(ctx, tree)
    for path, pyc in modules["source"].items():
        archive.add(Entry(path[: -len(".py")] + ".pyc", "file", 0o644, base64.b64decode(pyc)))
    archive.add(Entry("/usr/lib/python3.11/lib-dynload", "dir", 0o755))

    files, links = elfdeps.closure(tree, [INTERPRETER, *modules["extension"]])
    skeleton = [
        "/" + p.relative_to(ctx.config.root / "mkosi.extra").as_posix()
        for p in sorted((ctx.config.root / "mkosi.extra").rglob("*"))
        if p.is_file() or p.is_symlink()
    ]
    for path in skeleton:
        resolved = elfdeps.resolve(tree, path)
        links.update(resolved.links)
        files.add(resolved.real)
    # An ELF program of ExtraFiles= (nft, zfs-fuse, qemu-img) comes with its libraries.
    extra_files, extra_links = elfdeps.with_closure(tree, ctx.config.initramfs.extra_files)
    files.update(extra_files)
    links.update(extra_links)
    for link, target in links.items():
        archive.add(Entry(link, "symlink", 0o777, target=target))
    for path in sorted(files):
        host = tree / path.lstrip("/")
        if not host.is_file():
            raise BuildError(f"{path} is not in the rootfs", "check [Initramfs] ExtraFiles=")
        data = elfstrip.stripped(host.read_bytes())
        archive.add(Entry(path, "file", stat.S_IMODE(host.stat().st_mode), data))
    return archive


def early_paths(ctx: Context, tree: Path, archive: Archive) -> set[str]:
    """The paths under /usr that PID 1 needs before it mounts the /usr image: the bytecode the
    init module and /init's rescue loop import, the extension modules among it, and the
    interpreter with the shared libraries of both; and the rest of the init module's package
    (read from RAM instead of the image a moment later)."""
    from mvirt_build import elfdeps  # noqa: PLC0415 - pyelftools only when building

    init = ctx.config.initramfs.init.partition(":")[0]
    modules = collect_modules(ctx, tree, [init, *rescue_imports()])
    paths = {path[: -len(".py")] + ".pyc" for path in modules["source"]}
    files, links = elfdeps.closure(tree, [INTERPRETER, *modules["extension"]])
    return paths | files | set(links) | package_bytecode(archive, init)


def package_bytecode(archive: Archive, module: str) -> set[str]:
    """The bytecode of the whole package of `module` in the archive (for pideisn: also the
    services file parser and the supervisor it imports right after mounting /usr)."""
    package = module.rpartition(".")[0]
    if not package:
        return set()
    folder = f"{SITE_DIR}/{package.replace('.', '/')}/"
    return {p for p, e in archive.entries.items() if p.startswith(folder) and e.kind == "file"}


def rescue_imports() -> list[str]:
    """Every module init_rescue.py imports, at the top or inside its functions."""
    source = (Path(__file__).parents[1] / "init_rescue.py").read_text()
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return sorted(set(names))


def add_tree(archive: Archive, folder: Path) -> None:
    """Every file of `folder` at the same place in the image, replacing what is there."""
    for host in sorted(folder.rglob("*")):
        path = "/" + host.relative_to(folder).as_posix()
        if host.is_symlink():
            archive.add(Entry(path, "symlink", 0o777, target=os.readlink(host)))
        elif host.is_file():
            archive.add(Entry(path, "file", stat.S_IMODE(host.stat().st_mode), host.read_bytes()))


def render_listing(boot: Archive, logical: Archive) -> str:
    """One line per entry of the archive: mode, size, path (and link target); then, with a /usr
    image, the entries under /usr it holds."""
    lines = _listing_lines(boot)
    if boot is not logical:
        lines.append(f"# {usr_image.IMAGE_PATH}, mounted on {usr_image.MOUNT_POINT}:")
        usr = Archive()
        for e in logical.sorted_entries():
            if e.path.startswith(usr_image.MOUNT_POINT + "/"):
                usr.add(e)
        lines += _listing_lines(usr)
    return "\n".join(lines) + "\n"


def _listing_lines(archive: Archive) -> list[str]:
    lines = []
    for e in archive.sorted_entries():
        kind = {"file": "-", "dir": "d", "symlink": "l", "chardev": "c"}[e.kind]
        target = f" -> {e.target}" if e.target else ""
        lines.append(f"{kind}{e.mode & 0o7777:04o} {e.size:>10} {e.path}{target}")
    return lines


def size_breakdown(sizes: dict[str, dict[str, int]], raw: int, compressed: int) -> list[str]:
    """Uncompressed and (separately compressed, so approximate) size of each component."""
    lines = []
    for name in COMPONENTS:
        part = sizes[name]
        lines.append(
            f"  {name:<22} {part['raw'] / 2**20:7.2f} MiB -> {part['compressed'] / 2**20:6.2f} MiB"
        )
    lines.append(f"  {'total':<22} {raw / 2**20:7.2f} MiB -> {compressed / 2**20:6.2f} MiB")
    return lines
