"""Build configuration, read once into an immutable dataclass (mvirt-build.conf + kernel/)."""

import configparser
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mvirt_build import mkosi_config
from mvirt_build.apt_sources import APT_DIR
from mvirt_build.errors import BuildError

CONFIG_NAME = "mvirt-build.conf"


@dataclass(frozen=True)
class KernelConfig:
    """Where the kernel comes from and how it is configured."""

    source: str  # local path or https URL
    source_sha256: str | None
    version: str
    fragment: Path
    cmdline: str


COMPRESSIONS = ("zstd", "lz4")


@dataclass(frozen=True)
class InitramfsConfig:
    """What goes into the initramfs besides the skeleton."""

    init: str  # module:function that /init calls
    modules: tuple[str, ...]
    extra_modules: tuple[str, ...]
    extra_files: tuple[str, ...]
    compress_level: int
    compression: str = "zstd"  # zstd | lz4 (the kernel's legacy lz4 format)
    usr_image: str = ""  # "squashfs": /usr as one image pideisn mounts; "": /usr unpacked


@dataclass(frozen=True)
class UkiConfig:
    """The UKI stub and the identity written into `.osrel`."""

    stub: Path
    os_name: str
    image_id: str | None = None  # mkosi's ImageId=, IMAGE_ID in .osrel
    image_version: str | None = None  # mkosi's ImageVersion=, IMAGE_VERSION in .osrel


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build needs to know, resolved to absolute paths."""

    root: Path
    output_dir: Path
    cache_dir: Path
    source_date_epoch: int
    kernel: KernelConfig
    initramfs: InitramfsConfig
    uki: UkiConfig
    rootfs_tree: Path | None = None  # a tree built elsewhere (by `mkosi build`) to use as is
    # Secure Boot key pair given on the command line (else mkosi.conf [Validation], else keys/).
    secure_boot_key: Path | None = None
    secure_boot_certificate: Path | None = None
    # Build without pinned downloads that cannot be had (loudly), instead of failing.
    allow_missing_downloads: bool = False
    # Refuse a rootfs whose packages differ from rootfs.lock (instead of reporting and updating).
    locked: bool = False
    # Folders laid over the initramfs after mkosi.extra/ (like mkosi's ExtraTrees=): a test
    # build adds or replaces files of the image without touching the checkout.
    extra_trees: tuple[Path, ...] = ()
    # The machine's apt configuration, whose mirrors mkosi's sources are written from.
    apt_dir: Path = APT_DIR

    @property
    def state_dir(self) -> Path:
        """Where each stage records the inputs its outputs were made from."""
        return self.output_dir / ".state"


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder at or above `start` holding mvirt-build.conf."""
    env = os.environ.get("MVIRT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise BuildError(
        f"no {CONFIG_NAME} found in {here} or above",
        "run mvirt-build inside the mvirt checkout, or set MVIRT_ROOT",
    )


def default_cache_dir() -> Path:
    """Caches live outside the work tree so fresh clones and CI reuse them."""
    env = os.environ.get("MVIRT_CACHE_DIR")
    if env:
        return Path(env).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mvirt"


def source_date_epoch(root: Path, paths: tuple[str, ...] = ()) -> int:
    """SOURCE_DATE_EPOCH if set, else the time of the newest commit touching `paths` (all of
    the checkout when none are given), else 0."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct", "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return int(out) if out else 0
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


ALLOW_MISSING_ENV = "MVIRT_ALLOW_MISSING_DOWNLOADS"


def parse_flag(value: str, what: str) -> bool:
    """The one reading of a yes/no setting (configuration or environment): 1/yes/true/on or
    0/no/false/off (or empty); anything else is an error naming the setting."""
    lowered = value.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("", "0", "no", "false", "off"):
        return False
    raise BuildError(f"{what} must be yes or no, not {value!r}")


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise BuildError(f"cannot read {what} {path}: {exc.strerror}") from exc


def output_dir_of(given: Path | None, root: Path) -> Path:
    """Where artifacts go: --output-dir, else $MVIRT_OUTPUT_DIR, else build/ of the checkout."""
    env = os.environ.get("MVIRT_OUTPUT_DIR")
    return (given or (Path(env) if env else root / "build")).resolve()


def read_settings(root: Path) -> configparser.ConfigParser:
    """mvirt-build.conf of `root`, parsed (keys keep their case)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(root / CONFIG_NAME) as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise BuildError(f"cannot read {root / CONFIG_NAME}: {exc}") from exc
    return parser


def allow_missing_downloads(settings: configparser.ConfigParser) -> bool:
    """Whether pinned downloads that cannot be had may be left out: $MVIRT_ALLOW_MISSING_DOWNLOADS
    when set, else [Downloads] AllowMissing= (the setting `make` and `mvirt-build` share)."""
    env = os.environ.get(ALLOW_MISSING_ENV)
    if env is not None and env.strip():
        return parse_flag(env, ALLOW_MISSING_ENV)
    value = settings.get("Downloads", "AllowMissing", fallback="no")
    return parse_flag(value, f"{CONFIG_NAME}: [Downloads] AllowMissing=")


def load(
    root: Path | None = None,
    output_dir: Path | None = None,
    cache_dir: Path | None = None,
    rootfs_tree: Path | None = None,
) -> BuildConfig:
    """Read mvirt-build.conf and the files it names; validate them."""
    root = root or find_root()
    parser = read_settings(root)

    def get(section: str, key: str, default: str | None = None) -> str:
        value = parser.get(section, key, fallback=default)
        if value is None:
            raise BuildError(f"{CONFIG_NAME}: [{section}] {key}= is required")
        return value.strip()

    cache_dir = (cache_dir or default_cache_dir()).resolve()
    image = mkosi_config.summary(root, cache_dir)
    # mkosi's KernelCommandLine= when set, else [Kernel] Cmdline= (a file), else none.
    mkosi_cmdline = " ".join(image.get("KernelCommandLine") or [])
    cmdline_file = get("Kernel", "Cmdline", "")
    if mkosi_cmdline:
        cmdline = mkosi_cmdline
    elif cmdline_file:
        cmdline = " ".join(_read_text(root / cmdline_file, "kernel command line").split())
    else:
        cmdline = ""
    kernel = KernelConfig(
        source=get("Kernel", "Source"),
        source_sha256=get("Kernel", "SourceSha256", "") or None,
        version=_read_text(root / get("Kernel", "Version"), "kernel version file"),
        fragment=root / get("Kernel", "Fragment"),
        cmdline=cmdline,
    )
    try:
        level = int(get("Initramfs", "CompressLevel", "19"))
    except ValueError as exc:
        raise BuildError(f"{CONFIG_NAME}: [Initramfs] CompressLevel= must be a number") from exc
    compression = get("Initramfs", "Compression", "zstd")
    if compression not in COMPRESSIONS:
        raise BuildError(
            f"{CONFIG_NAME}: [Initramfs] Compression= is {compression!r}; "
            f"use one of {', '.join(COMPRESSIONS)}"
        )
    usr = get("Initramfs", "UsrImage", "no")
    if usr not in ("squashfs", "no"):
        raise BuildError(f"{CONFIG_NAME}: [Initramfs] UsrImage= is {usr!r}; use squashfs or no")
    init = get("Initramfs", "Init")
    if ":" not in init:
        raise BuildError(f"{CONFIG_NAME}: [Initramfs] Init= must be module:function, not {init!r}")
    initramfs = InitramfsConfig(
        init=init,
        modules=_words(get("Initramfs", "Modules", "")),
        extra_modules=_words(get("Initramfs", "ExtraModules", "")),
        extra_files=_words(get("Initramfs", "ExtraFiles", "")),
        compress_level=level,
        compression=compression,
        usr_image="" if usr == "no" else usr,
    )
    uki = UkiConfig(
        stub=Path(get("Uki", "Stub")),
        os_name=get("Uki", "OsRelease", "mvirt"),
        image_id=image.get("ImageId") or None,
        image_version=image.get("ImageVersion") or None,
    )
    return BuildConfig(
        root=root,
        output_dir=output_dir_of(output_dir, root),
        cache_dir=cache_dir,
        source_date_epoch=source_date_epoch(root),
        kernel=kernel,
        initramfs=initramfs,
        uki=uki,
        rootfs_tree=rootfs_tree.resolve() if rootfs_tree else None,
        allow_missing_downloads=allow_missing_downloads(parser),
    )


def initramfs_image(config: BuildConfig) -> Path:
    """build/initramfs.cpio.zst, or build/initramfs.cpio.lz4 with Compression=lz4."""
    suffix = "lz4" if config.initramfs.compression == "lz4" else "zst"
    return config.output_dir / f"initramfs.cpio.{suffix}"
