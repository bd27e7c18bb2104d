"""ISO stage: the (signed) UKI in a hybrid ISO that boots from CD and from USB disk."""

from __future__ import annotations

from pathlib import Path

from mvirt_build import tools
from mvirt_build.config import BuildConfig
from mvirt_build.graph import Context, Stage
from mvirt_build.iso import build_iso
from mvirt_build.manifest import (
    Input,
    build_manifest,
    load_manifest,
    manifest_path,
    write_manifest,
)
from mvirt_build.sign import is_signed
from mvirt_build.stages.release import signing_for
from mvirt_build.stages.uki import uki_path

ISO_NAME = "mvirt-uos.iso"
TOOLS = ("xorriso", "mkfs.fat", "mcopy", "mmd")


def iso_path(config: BuildConfig) -> Path:
    """build/mvirt-uos.iso"""
    return config.output_dir / ISO_NAME


class IsoStage(Stage):
    """Wrap build/mvirt-uos.efi into build/mvirt-uos.iso."""

    name = "iso"
    # 2: the ESP is a file inside the ISO 9660 volume (a UKI past 32 MiB boots from CD)
    version = 2
    deps = ("uki",)
    description = "hybrid ISO: El Torito EFI + GPT ESP holding the UKI as BOOTX64.EFI"

    def inputs(self, ctx: Context) -> dict[str, str]:
        return {
            "uki": ctx.file_input(uki_path(ctx.config)),
            "SOURCE_DATE_EPOCH": str(ctx.source_date_epoch(self.name)),
            **tools.identities(TOOLS),
        }

    def outputs(self, ctx: Context) -> list[Path]:
        return [iso_path(ctx.config), manifest_path(iso_path(ctx.config))]

    def summary(self, ctx: Context) -> str:
        size = iso_path(ctx.config).stat().st_size
        extra = size - uki_path(ctx.config).stat().st_size
        return f"{size / 2**20:.2f} MiB, UKI + {extra / 2**10:.0f} KiB ({iso_path(ctx.config)})"

    def build(self, ctx: Context) -> None:
        uki = uki_path(ctx.config)
        out = iso_path(ctx.config)
        build_iso(uki, out, epoch=ctx.source_date_epoch(self.name))
        cert = signing_for(ctx.config).cert if is_signed(uki) else None
        manifest = build_manifest(
            out,
            "iso",
            inputs=[Input("uki", uki), Input("uki manifest", manifest_path(uki))],
            tools=["xorriso", "mkfs.fat", "mcopy"],
            fetched=load_manifest(uki).get("fetched", []),
            source_date_epoch=ctx.source_date_epoch(self.name),
            signing_cert=cert,
            payload=uki,
        )
        write_manifest(out, manifest)
