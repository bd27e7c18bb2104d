"""mvirt-build: build the mvirt µOS image (kernel, rootfs, initramfs, UKI) and boot it."""

import dataclasses
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from mvirt_build import api_boot, release_cli
from mvirt_build import check as checks
from mvirt_build import config as configuration
from mvirt_build.console import follow
from mvirt_build.errors import BuildError
from mvirt_build.locking import locked
from mvirt_build.pipeline import FINAL, make_graph
from mvirt_build.stages.initramfs import listing_path
from mvirt_build.stages.iso import iso_path
from mvirt_build.stages.release import fetch_kernel_source, signing_for
from mvirt_build.stages.uki import uki_path

log = logging.getLogger("mvirt_build")
F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def handles_errors(func: F) -> F:
    """Turn BuildError into a one-paragraph message and exit status 1 (no traceback)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BuildError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; the interrupted stage is not marked done")

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show commands and the output of tools.")
@click.option(
    "--output-dir", type=click.Path(path_type=Path), help="Where artifacts go (default: build/)."
)
@click.option(
    "--cache-dir", type=click.Path(path_type=Path), help="Caches (default: ~/.cache/mvirt)."
)
@click.option(
    "--secure-boot-key",
    type=click.Path(path_type=Path),
    help="Sign with this PEM key (else mkosi.conf [Validation], else keys/).",
)
@click.option(
    "--secure-boot-certificate",
    type=click.Path(path_type=Path),
    help="Sign with this PEM certificate (goes with --secure-boot-key).",
)
@click.option(
    "--allow-missing-downloads",
    is_flag=True,
    help="Build without pinned downloads that cannot be had (named loudly).",
)
@click.option(
    "--locked",
    is_flag=True,
    help="Fail when the rootfs resolves other package versions than rootfs.lock.",
)
@click.option(
    "--extra-tree",
    "extra_trees",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Lay this folder over the initramfs after mkosi.extra/ (repeatable).",
)
@click.pass_context
def main(
    ctx: click.Context,
    verbose: bool,
    output_dir: Path | None,
    cache_dir: Path | None,
    secure_boot_key: Path | None,
    secure_boot_certificate: Path | None,
    allow_missing_downloads: bool,
    locked: bool,
    extra_trees: tuple[Path, ...],
) -> None:
    """Build the mvirt µOS image and boot it.

    Stages: kernel → rootfs → initramfs → uki. Each rebuilds only when its inputs changed.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    ctx.obj = {
        "output_dir": output_dir,
        "cache_dir": cache_dir,
        "secure_boot_key": secure_boot_key,
        "secure_boot_certificate": secure_boot_certificate,
        "allow_missing_downloads": allow_missing_downloads,
        "locked": locked,
        "extra_trees": tuple(p.resolve() for p in extra_trees),
    }


def _load(ctx: click.Context, rootfs_tree: Path | None = None) -> configuration.BuildConfig:
    cfg = configuration.load(
        output_dir=ctx.obj["output_dir"], cache_dir=ctx.obj["cache_dir"], rootfs_tree=rootfs_tree
    )
    cfg = dataclasses.replace(
        cfg,
        secure_boot_key=ctx.obj["secure_boot_key"],
        secure_boot_certificate=ctx.obj["secure_boot_certificate"],
        allow_missing_downloads=cfg.allow_missing_downloads or ctx.obj["allow_missing_downloads"],
        locked=ctx.obj["locked"],
        extra_trees=ctx.obj["extra_trees"],
    )
    if "://" in cfg.kernel.source:
        # An https kernel source: the pinned fetcher turns it into a verified local tarball.
        local = str(fetch_kernel_source(cfg))
        cfg = dataclasses.replace(cfg, kernel=dataclasses.replace(cfg.kernel, source=local))
    return cfg


def _build(cfg: configuration.BuildConfig, target: str, force: bool) -> None:
    graph = make_graph(cfg)
    started = time.monotonic()
    with locked(cfg.output_dir / ".lock", f"output folder {cfg.output_dir}"):
        built = graph.build([target], force=force)
    took = time.monotonic() - started
    if not built:
        log.info("everything is up to date (%.2f s)", took)
    else:
        log.info("built %s in %.1f s", ", ".join(built), took)


def _stage_command(name: str, help_text: str) -> None:
    @main.command(name=name, help=help_text)
    @click.option("--force", is_flag=True, help="Rebuild this stage even if it is up to date.")
    @click.pass_context
    @handles_errors
    def command(ctx: click.Context, force: bool) -> None:
        _build(_load(ctx), name, force)


_stage_command("kernel", "Build the kernel (tinyconfig + kernel/kernel.config), verified.")


@main.command()
@click.option("--force", is_flag=True, help="Rebuild the rootfs even if it is up to date.")
@click.option("--tree", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Use a tree mkosi already built (what mkosi.postoutput passes).")  # fmt: skip
@click.pass_context
@handles_errors
def rootfs(ctx: click.Context, force: bool, tree: Path | None) -> None:
    """Build the Debian rootfs tree with mkosi."""
    _build(_load(ctx, tree), "rootfs", force)


@main.command()
@click.option("--force", is_flag=True, help="Rebuild the initramfs even if it is up to date.")
@click.option("--list", "show", is_flag=True, help="Show the contents instead of building.")
@click.pass_context
@handles_errors
def initramfs(ctx: click.Context, force: bool, show: bool) -> None:
    """Build the initramfs (zstd cpio), or list what it holds."""
    cfg = _load(ctx)
    if not show:
        _build(cfg, "initramfs", force)
        return
    try:
        click.echo(listing_path(cfg).read_text(), nl=False)
    except OSError as exc:
        raise BuildError("the initramfs has not been built", "run `mvirt-build initramfs`") from exc


@main.command(name="uki")
@click.option("--force", is_flag=True, help="Rebuild the UKI even if it is up to date.")
@click.option("--tree", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Use a rootfs tree mkosi already built.")  # fmt: skip
@click.pass_context
@handles_errors
def uki_command(ctx: click.Context, force: bool, tree: Path | None) -> None:
    """Build everything up to the UKI and print its path."""
    cfg = _load(ctx, tree)
    _build(cfg, FINAL, force)
    click.echo(uki_path(cfg))


@main.command(name="iso")
@click.option("--force", is_flag=True, help="Rebuild the ISO even if it is up to date.")
@click.option("--uki", "efi", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Wrap this EFI program instead of building the image (needs -o).")  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=Path), help="ISO to write (--uki).")
@click.pass_context
@handles_errors
def iso_command(ctx: click.Context, force: bool, efi: Path | None, output: Path | None) -> None:
    """Build everything up to the hybrid ISO (CD and USB, UEFI) and print its path."""
    if efi is not None:
        if output is None:
            raise BuildError("--uki needs -o/--output for the ISO to write")
        release_cli.iso_from(efi, output)
        click.echo(output)
        return
    cfg = _load(ctx)
    _build(cfg, "iso", force)
    click.echo(iso_path(cfg))


@main.command()
@click.option(
    "--firmware",
    type=click.Choice(["uefi", "direct"]),
    default="uefi",
    show_default=True,
    help="UEFI (OVMF boots the UKI from an ESP) or direct kernel boot.",
)
@click.option(
    "--hypervisor",
    type=click.Choice(["qemu", "cloud-hypervisor"]),
    default="qemu",
    show_default=True,
)
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to wait for the ready line.",
)
@click.option(
    "--accel",
    type=click.Choice(["auto", "kvm", "tcg"]),
    default="auto",
    show_default=True,
    help="auto: KVM only if a probe shows it runs guests.",
)
@click.option("--ch-firmware", type=click.Path(path_type=Path), help="cloud-hypervisor firmware.")
@click.option("--no-build", is_flag=True, help="Boot what is there without building first.")
@click.option(
    "--uki",
    "image",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Boot this UKI instead of the build's (implies --no-build).",
)
@click.option("--iso", "use_iso", is_flag=True, help="Boot the build's ISO instead of the UKI.")
@click.option(
    "--iso-as",
    type=click.Choice(["cdrom", "disk"]),
    default="cdrom",
    show_default=True,
    help="Attach the ISO as a CD drive or as a plain disk.",
)
@click.option(
    "--secure-boot",
    is_flag=True,
    help="Enroll the signing certificate as PK/KEK/db; boot with Secure Boot enforcing.",
)
@click.option(
    "--api",
    is_flag=True,
    help="Forward the API ports 50051-50054 to this host's loopback, boot with mvirt.api=tls, "
    "wait until the API answers over mutual TLS, print how to reach it and keep the node "
    "running (until it powers off or Ctrl-C).",
)
@click.option(
    "--disk",
    "disks",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Attach this raw disk image (repeatable): /dev/vdb, /dev/vdc, ... in the node, "
    "e.g. a pool disk with --cmdline mvirt.zfs.disk=/dev/vdb.",
)
@click.option(
    "--cmdline",
    "cmdline_words",
    multiple=True,
    metavar="WORD",
    help="Add WORD (KEY=VALUE) to the kernel command line of this boot (repeatable; an "
    "unsigned copy of the UKI).",
)
@click.pass_context
@handles_errors
def boot(ctx: click.Context, firmware: str, hypervisor: str, timeout: float, accel: str,
         ch_firmware: Path | None, no_build: bool, image: Path | None, use_iso: bool,
         iso_as: str, secure_boot: bool, api: bool, disks: tuple[Path, ...],
         cmdline_words: tuple[str, ...]) -> None:  # fmt: skip
    """Boot the image and wait for its ready line (exit 0), or fail with the last lines."""
    from mvirt_build import boot as booting  # noqa: PLC0415 - keeps other commands fast

    cfg = _load(ctx)
    if not no_build and image is None:
        _build(cfg, "iso" if use_iso else FINAL, False)
    image = image or uki_path(cfg)
    if not image.is_file():
        raise BuildError(f"{image} does not exist", "run `mvirt-build uki`")
    iso = iso_path(cfg) if use_iso else None
    if iso is not None and not iso.is_file():
        raise BuildError(f"{iso} does not exist", "run `mvirt-build iso`")
    keys = cfg.root / "keys"
    if api:
        api_boot.check_client_keys(keys)
    cert = None
    if secure_boot:
        cert = signing_for(cfg).cert
        if cert is None:
            raise BuildError("--secure-boot needs a signing key", "run `mvirt-build genkey`")
    shown = iso.name if iso else image.name
    mode = f"{firmware}{', Secure Boot' if cert else ''}{f', ISO as {iso_as}' if iso else ''}"
    log.info("booting %s (%s, %s)", shown, mode, hypervisor)
    result = booting.boot(
        cfg,
        uki=image,
        firmware=firmware,
        hypervisor=hypervisor,
        timeout=timeout,
        accel=accel,
        ch_firmware=ch_firmware,
        echo=sys.stdout,
        iso=iso,
        iso_as=iso_as,
        secure_boot_cert=cert,
        api=api,
        disks=disks,
        cmdline_words=cmdline_words,
    )
    if result.ok and result.process is not None:
        click.secho(f"boot: ready after {result.seconds:.1f} s", fg="green")
        _serve_api(result.process, keys, api_boot.fingerprint_of(result.collected), timeout)
        return
    if result.ok:
        click.secho(f"boot: ready after {result.seconds:.1f} s", fg="green")
        return
    click.secho(f"boot failed: {result.reason} (after {result.seconds:.1f} s)", fg="red", err=True)
    for line in result.tail[-15:]:
        click.echo(f"  | {line}", err=True)
    sys.exit(1)


def _serve_api(
    process: subprocess.Popen[bytes], keys: Path, fingerprint: str | None, timeout: float
) -> None:
    """Wait until the node's API answers, say how to reach it, then follow the console."""
    try:
        answered, text = api_boot.wait_for_api(keys, fingerprint, timeout)
        if not answered:
            raise BuildError(f"the node's API did not answer within {timeout:.0f} s: {text}")
        relative = Path(os.path.relpath(keys))
        click.secho("boot: the API answers over mutual TLS; reach it with", fg="green")
        click.echo("  .venv/bin/" + shlex.join(api_boot.client_command(relative, None, "system")))
        click.echo(f"  (node fingerprint {fingerprint or 'not printed'}; pin it with "
                   "--tls-fingerprint, or trust it on first use)")  # fmt: skip
        click.echo(
            f"  .venv/bin/mvirt logs --log-server localhost:{api_boot.API_PORTS[1]} "
            f"--tls {relative}/"
        )
        click.echo("  power off: Ctrl-C here")
        status = follow(process)
        click.echo(f"boot: the node exited (status {status})")
    except KeyboardInterrupt:
        click.echo("boot: stopping the node")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handles_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Which stages are stale, and why."""
    graph = make_graph(_load(ctx))
    rows = graph.plan([FINAL])
    graph.ctx.digests.save()
    if as_json:
        click.echo(json.dumps([row.__dict__ for row in rows], indent=1))
        return
    for row in rows:
        state = (
            click.style("stale", fg="yellow")
            if row.stale
            else click.style("up to date", fg="green")
        )
        click.echo(f"{row.stage:<10} {state}")
        for reason in row.reasons:
            click.echo(f"           - {reason}")


@main.command(name="check")
@handles_errors
def check_command() -> None:
    """Check the tools the build needs; print the commands that install what is missing."""
    absent = checks.missing()
    for req in checks.REQUIREMENTS:
        mark = click.style("missing", fg="red") if req in absent else click.style("ok", fg="green")
        click.echo(f"{req.what:<48} {mark}  ({req.package})")
    if absent:
        click.echo("\nInstall what is missing with:")
        for command in checks.install_commands(absent):
            click.echo(f"  {command}")
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def inspect(file: Path, as_json: bool) -> None:
    """Print a UKI's sections (size, SHA-256), its text sections (.osrel, .cmdline, .uname,
    .sbat) and its signers with their validity; check its layout (exit 1 on a problem)."""
    from mvirt_build import uki_report  # noqa: PLC0415

    report = uki_report.describe(file.read_bytes())
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for line in uki_report.render(report):
            click.echo(line)
        for problem in report["problems"]:
            click.secho(f"problem: {problem}", fg="red", err=True)
        if not report["problems"]:
            click.secho("layout: ok", fg="green")
    if report["problems"]:
        sys.exit(1)


@main.command()
@click.pass_context
@handles_errors
def menuconfig(ctx: click.Context) -> None:
    """Run the kernel's menuconfig; write the options you changed into kernel/kernel.config."""
    from mvirt_build.graph import Context  # noqa: PLC0415
    from mvirt_build.stages.kernel import menuconfig as run_menuconfig  # noqa: PLC0415

    changed = run_menuconfig(Context(_load(ctx)))
    if not changed:
        click.echo("no option changed")
    for option, value in changed.items():
        click.echo(f"kernel/kernel.config: {option}={value}")


@main.command()
@click.pass_context
@handles_errors
def clean(ctx: click.Context) -> None:
    """Remove the build outputs (build/). Needs no loadable configuration: cleaning is how a
    user starts over."""
    out = configuration.output_dir_of(ctx.obj["output_dir"], configuration.find_root())
    shutil.rmtree(out, ignore_errors=True)
    click.echo(f"removed {out}")


@main.command()
@click.pass_context
@handles_errors
def distclean(ctx: click.Context) -> None:
    """Remove the build outputs and the caches (extracted kernel source, kernel builds,
    rootfs trees, package and download caches)."""
    cfg = _load(ctx)
    for path in (cfg.output_dir, cfg.cache_dir):
        shutil.rmtree(path, ignore_errors=True)
        click.echo(f"removed {path}")


release_cli.register(main)


if __name__ == "__main__":
    main()
