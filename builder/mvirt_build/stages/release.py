"""What the pipeline's stages do for releases: which key signs, the pinned downloads placed in
the initramfs, and the manifest written beside each artifact."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mvirt_build import fetch
from mvirt_build.config import BuildConfig, initramfs_image
from mvirt_build.cpio import Archive, Entry
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context
from mvirt_build.hashing import sha256_text
from mvirt_build.keys import SigningConfig, resolve_signing
from mvirt_build.lockfile import LockEntry, load_lock
from mvirt_build.manifest import Input, build_manifest, write_manifest

log = logging.getLogger("mvirt_build")

LOCK_NAME = "downloads.lock"
BUILD_TOOLS = ("gcc", "mkosi", "sbsign", "qemu-system-x86_64")


def signing_for(config: BuildConfig) -> SigningConfig:
    """The key pair this build signs with (none: unsigned)."""
    return resolve_signing(config.root, config.secure_boot_key, config.secure_boot_certificate)


def signing_input(ctx: Context) -> str:
    """Stage input for signing: the certificate and key digests, or "unsigned"."""
    cfg = signing_for(ctx.config)
    if cfg.key is None or cfg.cert is None:
        return "unsigned"
    return f"cert {ctx.file_input(cfg.cert)} key {ctx.file_input(cfg.key)}"


def downloads_path(config: BuildConfig) -> Path:
    """build/downloads.json: what the initramfs got from downloads.lock, and what is missing."""
    return config.output_dir / "downloads.json"


def downloads_input(ctx: Context) -> str:
    """Stage input for the downloads: the lock, which pinned files are in the cache, and whether
    missing ones are allowed (so fetching one later rebuilds the initramfs)."""
    lock_file = ctx.config.root / LOCK_NAME
    if not lock_file.is_file():
        return "no downloads.lock"
    lock = load_lock(lock_file)
    cached = [
        e.name
        for e in lock.entries
        if e.install
        and e.sha256
        and (fetch.downloads_cache(ctx.config.cache_dir) / e.sha256).is_file()
    ]
    state = {
        "lock": ctx.file_input(lock_file),
        "cached": cached,
        "allow missing": ctx.config.allow_missing_downloads,
    }
    return sha256_text(json.dumps(state, sort_keys=True))


def fetch_downloads(ctx: Context) -> fetch.FetchReport | None:
    """Fetch every download with an install path into the download cache (None without a
    downloads.lock). Missing files stop the build unless allowed."""
    lock_file = ctx.config.root / LOCK_NAME
    if not lock_file.is_file():
        return None
    lock = load_lock(lock_file)
    return fetch.fetch_all(
        lock,
        fetch.FetchOptions(cache_dir=ctx.config.cache_dir),
        allow_missing=ctx.config.allow_missing_downloads,
        names=[e.name for e in lock.entries if e.install],
    )


def add_downloads(ctx: Context, archive: Archive, report: fetch.FetchReport | None) -> None:
    """Add the fetched downloads to the initramfs; record the outcome in build/downloads.json
    and name each missing file on stderr."""
    if report is None:
        downloads_path(ctx.config).write_text(json.dumps({"fetched": [], "missing": []}) + "\n")
        return
    for item in report.fetched:
        data = fetch.installed_content(item)
        archive.add(Entry(item.entry.install, "file", item.entry.mode, data))
    for entry, reason in report.missing:
        log.warning(
            "WARNING: %s is MISSING from the image (%s): %s",
            entry.name,
            entry.install,
            reason.splitlines()[0],
        )
    record = {
        "fetched": [
            {"name": f.entry.name, "sha256": f.entry.sha256, "install": f.entry.install,
             "source": f.source}
            for f in report.fetched
        ],
        "missing": [{"name": e.name, "install": e.install} for e, _ in report.missing],
    }  # fmt: skip
    downloads_path(ctx.config).write_text(json.dumps(record, indent=2) + "\n")


def fetch_kernel_source(config: BuildConfig) -> Path:
    """The kernel tarball for an https [Kernel] Source=: pinned by its downloads.lock entry
    (same URL) or by [Kernel] SourceSha256=, fetched and verified into the download cache."""
    url = config.kernel.source
    lock_file = config.root / LOCK_NAME
    entries = (
        [e for e in load_lock(lock_file).entries if e.url == url] if lock_file.is_file() else []
    )
    if entries:
        entry = entries[0]
    elif config.kernel.source_sha256:
        entry = LockEntry("kernel-source", url, config.kernel.source_sha256.lower(), None, "",
                          "none", 0o644, "from mvirt-build.conf")  # fmt: skip
    else:
        raise BuildError(
            f"kernel source {url} is not pinned",
            hint="add it to downloads.lock or set [Kernel] SourceSha256= in mvirt-build.conf",
        )
    return fetch.fetch(entry, fetch.FetchOptions(cache_dir=config.cache_dir)).path


def _packages(config: BuildConfig) -> list[dict[str, str]]:
    try:
        record = json.loads((config.output_dir / "rootfs.json").read_text())
    except (OSError, ValueError):
        return []
    out = []
    for item in record.get("packages", []):
        name, _, version = str(item).partition("=")
        out.append({"name": name, "version": version})
    return out


def _fetched(config: BuildConfig) -> list[dict[str, Any]]:
    try:
        data = json.loads(downloads_path(config).read_text())
    except (OSError, ValueError):
        return []
    return [*data.get("fetched", []), *({**m, "missing": True} for m in data.get("missing", []))]


def write_uki_manifest(
    ctx: Context, uki: Path, unsigned: Path, kernel_inputs: dict[str, str], signed: bool
) -> Path:
    """build/mvirt-uos.efi.manifest.json: inputs, packages, downloads, tools, sections."""
    cfg = ctx.config
    kernel_dir = cfg.output_dir / "kernel"
    inputs = [
        Input("kernel source", value=cfg.kernel.source),
        Input("kernel source sha256", value=kernel_inputs.get("kernel source", "")),
        Input("kernel fragment", cfg.kernel.fragment),
        Input("kernel .config", kernel_dir / "config"),
        Input("kernel release", value=(kernel_dir / "release").read_text().strip()),
        Input("bzImage", kernel_dir / "bzImage"),
        Input("cmdline", value=cfg.kernel.cmdline),
        Input("stub", cfg.uki.stub),
        Input("initramfs", initramfs_image(cfg)),
    ]
    signing = signing_for(cfg)
    if signed and signing.cert is None:
        raise BuildError("signed UKI without a certificate")
    manifest = build_manifest(
        uki,
        "uki",
        inputs=inputs,
        packages=_packages(cfg),
        tools=BUILD_TOOLS,
        fetched=_fetched(cfg),
        source_date_epoch=ctx.source_date_epoch("uki"),
        signing_cert=signing.cert if signed else None,
        unsigned=unsigned,
    )
    return write_manifest(uki, manifest)
