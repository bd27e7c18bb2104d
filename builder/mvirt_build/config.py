"""Build configuration, read once into an immutable dataclass (mvirt-build.conf + kernel/)."""

import configparser
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class InitramfsConfig:
    """What goes into the initramfs besides the skeleton."""

    init: str  # module:function that /init calls
    modules: tuple[str, ...]
    extra_modules: tuple[str, ...]
    extra_files: tuple[str, ...]
    compress_level: int


@dataclass(frozen=True)
class UkiConfig:
    """The UKI stub and the identity written into `.osrel`."""

    stub: Path
    os_name: str


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
    # Folders laid over the initramfs after mkosi.extra/ (like mkosi's ExtraTrees=): a test
    # build adds or replaces files of the image without touching the checkout.
    extra_trees: tuple[Path, ...] = ()

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


def source_date_epoch(root: Path) -> int:
    """SOURCE_DATE_EPOCH if set, else the time of the last commit, else 0."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return int(out) if out else 0
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def _flag(value: str, what: str) -> bool:
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


def load(
    root: Path | None = None,
    output_dir: Path | None = None,
    cache_dir: Path | None = None,
    rootfs_tree: Path | None = None,
) -> BuildConfig:
    """Read mvirt-build.conf and the files it names; validate them."""
    root = root or find_root()
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(root / CONFIG_NAME) as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise BuildError(f"cannot read {root / CONFIG_NAME}: {exc}") from exc

    def get(section: str, key: str, default: str | None = None) -> str:
        value = parser.get(section, key, fallback=default)
        if value is None:
            raise BuildError(f"{CONFIG_NAME}: [{section}] {key}= is required")
        return value.strip()

    cmdline = " ".join(_read_text(root / get("Kernel", "Cmdline"), "kernel command line").split())
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
    init = get("Initramfs", "Init")
    if ":" not in init:
        raise BuildError(f"{CONFIG_NAME}: [Initramfs] Init= must be module:function, not {init!r}")
    initramfs = InitramfsConfig(
        init=init,
        modules=_words(get("Initramfs", "Modules", "")),
        extra_modules=_words(get("Initramfs", "ExtraModules", "")),
        extra_files=_words(get("Initramfs", "ExtraFiles", "")),
        compress_level=level,
    )
    uki = UkiConfig(stub=Path(get("Uki", "Stub")), os_name=get("Uki", "OsRelease", "mvirt"))
    env_out = os.environ.get("MVIRT_OUTPUT_DIR")
    return BuildConfig(
        root=root,
        output_dir=(output_dir or (Path(env_out) if env_out else root / "build")).resolve(),
        cache_dir=(cache_dir or default_cache_dir()).resolve(),
        source_date_epoch=source_date_epoch(root),
        kernel=kernel,
        initramfs=initramfs,
        uki=uki,
        rootfs_tree=rootfs_tree.resolve() if rootfs_tree else None,
        allow_missing_downloads=_flag(
            os.environ.get("MVIRT_ALLOW_MISSING_DOWNLOADS")
            or get("Downloads", "AllowMissing", "no"),
            "[Downloads] AllowMissing= (or MVIRT_ALLOW_MISSING_DOWNLOADS)",
        ),
    )
