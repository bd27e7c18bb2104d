"""`mvirt-build` commands for releases: keys, signing, pinned downloads, ISO, verify."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from mvirt_build import fetch as fetch_mod
from mvirt_build import packages
from mvirt_build.api_keys import generate_api_keys
from mvirt_build.config import (
    ALLOW_MISSING_ENV,
    allow_missing_downloads,
    find_root,
    read_settings,
    source_date_epoch,
)
from mvirt_build.errors import BuildError
from mvirt_build.hashing import sha256_and_size
from mvirt_build.iso import build_iso
from mvirt_build.keys import (
    CERT_DER_NAME,
    CERT_NAME,
    DEFAULT_KEYS_DIR,
    KEY_NAME,
    generate_keys,
    resolve_signing,
)
from mvirt_build.lockfile import load_lock, pin_entry, write_lock
from mvirt_build.manifest import (
    Input,
    build_manifest,
    load_manifest,
    missing_downloads,
    verify_artifact,
    write_manifest,
)
from mvirt_build.sign import sign_pe

P = ParamSpec("P")
R = TypeVar("R")

LOCK_NAME = "downloads.lock"


def repo_root() -> Path:
    """The checkout the command works on (the folder of mvirt-build.conf, or $MVIRT_ROOT)."""
    return find_root()


def cache_dir_option() -> Path | None:
    """mvirt-build's --cache-dir, when the command runs under it and it was given."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    value = obj.get("cache_dir") if isinstance(obj, dict) else None
    return Path(value).resolve() if value else None


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn BuildError into a one-line CLI error (exit 1) instead of a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except BuildError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper


key_option = click.option(
    "--secure-boot-key",
    "key",
    type=click.Path(path_type=Path),
    help="PEM private key to sign with (like mkosi's SecureBootKey=).",
)
cert_option = click.option(
    "--secure-boot-certificate",
    "cert",
    type=click.Path(path_type=Path),
    help="PEM certificate to sign with (like mkosi's SecureBootCertificate=).",
)


@click.command()
@click.option("--dir", "out_dir", type=click.Path(path_type=Path), help="Default: keys/.")
@click.option("--common-name", default="mvirt Secure Boot", show_default=True)
@click.option("--bits", default=2048, show_default=True, help="RSA key size (>= 2048).")
@click.option("--force", is_flag=True, help="Replace existing keys instead of keeping them.")
@user_errors
def genkey(out_dir: Path | None, common_name: str, bits: int, force: bool) -> None:
    """Make the Secure Boot key and certificate, and the API's client CA and a client
    certificate; keys that exist are kept."""
    out_dir = out_dir or repo_root() / DEFAULT_KEYS_DIR
    kept = " (kept: it exists; --force replaces it)"
    names = (KEY_NAME, CERT_NAME, CERT_DER_NAME)
    if not force and all((out_dir / name).exists() for name in names):
        sb_key, sb_cert, sb_der, sb_note = (*(out_dir / n for n in names), kept)
    else:
        made = generate_keys(out_dir, common_name=common_name, bits=bits, force=force)
        sb_key, sb_cert, sb_der, sb_note = made.key, made.cert, made.cert_der, ""
    api = generate_api_keys(out_dir, force=force)
    click.echo(f"Secure Boot key:  {sb_key} (keep it secret; never commit it){sb_note}")
    click.echo(f"  certificate:    {sb_cert} (PEM), {sb_der} (DER, for firmware enrollment)")
    click.echo(
        f"API client CA:    {api.ca.cert} (baked into the image), {api.ca.key} (keep it "
        f"secret: it admits clients){'' if api.ca.created else kept}"
    )
    click.echo(
        f"API client:       {api.client.cert}, {api.client.key} (for `mvirt --tls "
        f"{out_dir}`){'' if api.client.created else kept}"
    )


@click.command()
@click.argument("artifact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Default: in place.")
@key_option
@cert_option
@user_errors
def sign(artifact: Path, output: Path | None, key: Path | None, cert: Path | None) -> None:
    """Sign a PE image (kernel, UKI) with the configured Secure Boot key."""
    cfg = resolve_signing(repo_root(), key, cert)
    if not cfg.enabled or cfg.key is None or cfg.cert is None:
        raise BuildError("no Secure Boot key configured", hint="run `mvirt-build genkey`")
    sign_pe(artifact, output or artifact, cfg.key, cfg.cert)
    click.echo(f"signed {output or artifact} with {cfg.cert} ({cfg.origin})")


def _parse_local(values: tuple[str, ...]) -> dict[str, Path]:
    local: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise BuildError(f"--download takes NAME=PATH, not {value!r}")
        local[name] = Path(path)
    return local


def allow_missing_requested(flag: bool) -> bool:
    """True when the user asked to go on without unavailable downloads: the flag, else the
    environment or mvirt-build.conf, read as the build reads them."""
    return flag or allow_missing_downloads(read_settings(repo_root()))


def report_missing(report: fetch_mod.FetchReport) -> None:
    """Say loudly, on stderr, which downloads the image will lack."""
    for entry, reason in report.missing:
        first = reason.splitlines()[0]
        click.secho(
            f"WARNING: {entry.name} is MISSING from the image "
            f"({entry.install or 'build input'}): {first}",
            fg="yellow",
            bold=True,
            err=True,
        )


@click.command("fetch")
@click.argument("names", nargs=-1)
@click.option(
    "--download",
    "downloads",
    multiple=True,
    metavar="NAME=PATH",
    help="Use a local copy of a download (verified against the lock, then cached).",
)
@click.option("--offline", is_flag=True, help="Use only the cache and local copies.")
@click.option(
    "--allow-missing-downloads",
    is_flag=True,
    help=f"Go on without downloads that are unavailable (also: {ALLOW_MISSING_ENV}=1).",
)
@user_errors
def fetch_cmd(
    names: tuple[str, ...],
    downloads: tuple[str, ...],
    offline: bool,
    allow_missing_downloads: bool,
) -> None:
    """Fetch the pinned downloads of downloads.lock into the cache."""
    lock = load_lock(repo_root() / LOCK_NAME)
    for name in names:
        lock.get(name)
    report = fetch_mod.fetch_all(
        lock,
        fetch_mod.FetchOptions(offline=offline, cache_dir=cache_dir_option()),
        _parse_local(downloads),
        allow_missing=allow_missing_requested(allow_missing_downloads),
        names=list(names) or None,
    )
    for item in report.fetched:
        click.echo(f"{item.entry.name}: {item.path} ({item.source})")
    report_missing(report)


@click.command()
@click.argument("name")
@click.option(
    "--file",
    "local",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A copy of the download you have checked.",
)
@click.option("--yes", is_flag=True, help="Pin without asking.")
@user_errors
def lock(name: str, local: Path, yes: bool) -> None:
    """Pin download NAME in downloads.lock to the SHA-256 and size of a local file."""
    path = repo_root() / LOCK_NAME
    current = load_lock(path)
    entry = current.get(name)
    sha256, size = sha256_and_size(local)
    fetch_mod.check_content(entry, local)
    click.echo(f"{name}: {entry.url}\n  file   {local}\n  sha256 {sha256}\n  size   {size}")
    if entry.sha256 and entry.sha256 != sha256:
        click.secho(f"  this REPLACES the pinned sha256 {entry.sha256}", fg="yellow", err=True)
    if not yes and not click.confirm("Pin this file as the trusted download?", default=False):
        raise click.ClickException("not pinned")
    write_lock(pin_entry(current, name, sha256, size))
    click.echo(f"pinned {name} in {path}")


def iso_from(efi: Path, output: Path) -> None:
    """Make a hybrid UEFI ISO (CD and USB disk) booting `efi`, with its manifest."""
    root = repo_root()
    epoch = source_date_epoch(root)
    result = build_iso(efi, output, epoch=epoch)
    cfg = resolve_signing(root)
    manifest = build_manifest(
        output,
        "iso",
        inputs=[Input("uki", efi)],
        tools=["xorriso", "mkfs.fat", "mcopy"],
        source_date_epoch=epoch,
        signing_cert=cfg.cert if cfg.enabled else None,
        payload=efi,
    )
    write_manifest(output, manifest)
    click.echo(
        f"{output}: {result.size} bytes (UKI {result.payload_size}, "
        f"+{result.size - result.payload_size} bytes of ISO and FAT)"
    )


@click.command()
@click.argument("artifact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificate to check signatures with (default: the configured one; never the "
    "manifest's).",
)
@click.pass_context
@user_errors
def verify(ctx: click.Context, artifact: Path, cert: Path | None) -> None:
    """Check an artifact's layout, signature and hashes against its manifest.

    Exit status 1: something does not match; 2: it matches, but the artifact was built without
    some pinned downloads (incomplete)."""
    # The certificate to trust: --cert, else `mvirt-build --secure-boot-certificate`, else the
    # configured one; never one the manifest names.
    configured = (ctx.obj or {}).get("secure_boot_certificate")
    trusted = cert or configured or resolve_signing(repo_root()).cert
    problems = verify_artifact(artifact, cert=trusted)
    if problems:
        for problem in problems:
            click.secho(f"MISMATCH: {problem}", fg="red", err=True)
        raise click.ClickException(f"{artifact}: {len(problems)} problem(s)")
    missing = missing_downloads(load_manifest(artifact))
    if missing:
        click.secho(
            f"{artifact}: INCOMPLETE: built without {', '.join(missing)} "
            "(layout, signature and hashes match the manifest)",
            fg="yellow",
            err=True,
        )
        sys.exit(2)
    click.echo(f"{artifact}: OK (layout, signature and hashes match the manifest)")


@click.command("secureboot-vars")
@click.argument("output", type=click.Path(path_type=Path))
@cert_option
@user_errors
def secureboot_vars(output: Path, cert: Path | None) -> None:
    """Write an OVMF variable store with the certificate enrolled as PK, KEK and db."""
    from mvirt_build.secureboot import enroll_certificate, enrolled_subjects  # noqa: PLC0415

    cfg = resolve_signing(repo_root(), None, None) if cert is None else None
    chosen = cert or (cfg.cert if cfg else None)
    if chosen is None:
        raise BuildError("no certificate configured", hint="run `mvirt-build genkey`")
    enroll_certificate(chosen, output)
    subjects = enrolled_subjects(output)
    click.echo(f"{output}: " + ", ".join(f"{k}={v}" for k, v in subjects.items()))


@click.command()
@click.argument("first", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("second", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@user_errors
def compare(first: Path, second: Path) -> None:
    """Compare two builds of an artifact; name the PE section / initramfs file that differs."""
    from mvirt_build.compare import diff_files  # noqa: PLC0415

    differences = diff_files(first, second)
    if differences:
        for line in differences:
            click.secho(f"DIFFERS: {line}", fg="red", err=True)
        raise click.ClickException(f"{first} and {second} differ")
    click.echo(f"{first} and {second} are identical")


@click.command("release")
@click.option(
    "--dist",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the packages go (emptied first). Default: dist/.",
)
@click.option("--no-deb", is_flag=True, help="Only the wheel and the sdist.")
@user_errors
def release_cmd(dist: Path | None, no_deb: bool) -> None:
    """Wheel, sdist and Debian packages of the checkout's tracked files, into dist/.

    The wheel and the sdist are the same bytes from the same commit; the .deb packages
    (mvirt-common, mvirt, mvirt-log, mvirt-vmm, ...) are built with dpkg-buildpackage from
    debian/ and must pass lintian without errors.
    """
    root = repo_root()
    made = packages.release(root, dist or root / "dist", source_date_epoch(root), debs=not no_deb)
    for path in [made.wheel, made.sdist, *made.debs]:
        click.echo(path)


COMMANDS = (genkey, sign, fetch_cmd, lock, verify, secureboot_vars, compare, release_cmd)


def register(group: click.Group) -> None:
    """Add the release commands to the `mvirt-build` group."""
    for command in COMMANDS:
        group.add_command(command)
