"""UKI stage: kernel + initramfs + command line + identity on systemd's EFI stub."""

import logging
from importlib.metadata import version
from pathlib import Path

from mvirt_build import budget, tools, uki
from mvirt_build.config import BuildConfig, UkiConfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Stage
from mvirt_build.manifest import manifest_path
from mvirt_build.sign import is_signed, write_uki
from mvirt_build.stages.initramfs import image_path as initramfs_path
from mvirt_build.stages.initramfs import sizes_path
from mvirt_build.stages.kernel import KernelStage
from mvirt_build.stages.release import signing_for, signing_input, write_uki_manifest

UKI_NAME = "mvirt-uos.efi"
UNSIGNED_NAME = "mvirt-uos.unsigned.efi"
log = logging.getLogger("mvirt_build")


def os_release(uki: UkiConfig) -> str:
    """The image's os-release (the `.osrel` section), with mkosi's ImageId=/ImageVersion= as
    IMAGE_ID/IMAGE_VERSION when set."""
    v, name = version("mvirt"), uki.os_name
    text = f'NAME="{name}"\nID=mvirt\nVERSION_ID={v}\nPRETTY_NAME="{name} {v}"\n'
    if uki.image_id:
        text += f"IMAGE_ID={uki.image_id}\n"
    if uki.image_version:
        text += f"IMAGE_VERSION={uki.image_version}\n"
    return text


def sbat_line() -> bytes:
    """The image's own SBAT entry, appended to the stub's."""
    return f"mvirt,1,mvirt,mvirt-uos,{version('mvirt')},-\n".encode()


class UkiStage(Stage):
    """Assemble build/mvirt-uos.efi."""

    name = "uki"
    deps = ("kernel", "initramfs")
    sources = ("mvirt-build.conf",)
    description = "unified kernel image: stub + .linux + .initrd + .cmdline + .osrel + .uname"

    def inputs(self, ctx: Context) -> dict[str, str]:
        stub = ctx.config.uki.stub
        if not stub.is_file():
            raise BuildError(f"EFI stub {stub} not found", "apt-get install systemd-boot-efi")
        return {
            "cmdline": ctx.config.kernel.cmdline,
            "stub": ctx.file_input(stub),
            "os-release": os_release(ctx.config.uki),
            "sbat": sbat_line().decode(),
            "signing": signing_input(ctx),
            **tools.identities(("sbsign",)),
        }

    def outputs(self, ctx: Context) -> list[Path]:
        out = uki_path(ctx.config)
        return [out, unsigned_uki_path(ctx.config), manifest_path(out)]

    def summary(self, ctx: Context) -> str:
        out = uki_path(ctx.config)
        state = "signed" if is_signed(out) else "UNSIGNED"
        return f"{out.stat().st_size / 2**20:.2f} MiB, {state} ({out})"

    def build(self, ctx: Context) -> None:
        kernel_dir = KernelStage.out_dir(ctx)
        contents = {
            ".osrel": os_release(ctx.config.uki).encode(),
            ".cmdline": ctx.config.kernel.cmdline.encode() + b"\n",
            ".uname": (kernel_dir / "release").read_text().strip().encode(),
            ".initrd": initramfs_path(ctx.config).read_bytes(),
            ".linux": (kernel_dir / "bzImage").read_bytes(),
        }
        stub = ctx.config.uki.stub.read_bytes()

        def assemble(kernel: bytes) -> bytes:
            image = uki.assemble(stub, {**contents, ".linux": kernel}, sbat_line())
            problems = uki.inspect(image).problems
            if problems:
                raise BuildError("assembled UKI is malformed: " + "; ".join(problems))
            return image

        signing = signing_for(ctx.config)
        if not signing.enabled:
            log.warning(
                "uki        WARNING: no Secure Boot key configured, the UKI is UNSIGNED "
                "(run `mvirt-build genkey` to sign)"
            )
        out, unsigned = uki_path(ctx.config), unsigned_uki_path(ctx.config)
        signed = write_uki(
            assemble, kernel_dir / "bzImage", out, unsigned, signing.key, signing.cert
        )
        write_uki_manifest(ctx, out, unsigned, KernelStage().inputs(ctx), signed)
        log.info("uki        size by component (zstd figures per component are approximate):")
        table = budget.uki_table(
            len(contents[".linux"]),
            len(contents[".initrd"]),
            budget.read_sizes(sizes_path(ctx.config)),
            out.stat().st_size,
        )
        for line in table:
            log.info("uki        %s", line)


def uki_path(config: BuildConfig) -> Path:
    """build/mvirt-uos.efi"""
    return config.output_dir / UKI_NAME


def unsigned_uki_path(config: BuildConfig) -> Path:
    """build/mvirt-uos.unsigned.efi: the same UKI before any signing (reproducible)."""
    return config.output_dir / UNSIGNED_NAME
