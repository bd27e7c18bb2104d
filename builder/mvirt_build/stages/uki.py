"""UKI stage: kernel + initramfs + command line + identity on systemd's EFI stub."""

from importlib.metadata import version
from pathlib import Path

from mvirt_build import uki
from mvirt_build.config import BuildConfig
from mvirt_build.errors import BuildError
from mvirt_build.graph import Context, Stage
from mvirt_build.stages.initramfs import image_path as initramfs_path
from mvirt_build.stages.kernel import KernelStage

UKI_NAME = "mvirt-uos.efi"


def os_release(name: str) -> str:
    """The image's os-release (the `.osrel` section)."""
    v = version("mvirt")
    return f'NAME="{name}"\nID=mvirt\nVERSION_ID={v}\nPRETTY_NAME="{name} {v}"\n'


def sbat_line() -> bytes:
    """The image's own SBAT entry, appended to the stub's."""
    return f"mvirt,1,mvirt,mvirt-uos,{version('mvirt')},-\n".encode()


class UkiStage(Stage):
    """Assemble build/mvirt-uos.efi."""

    name = "uki"
    deps = ("kernel", "initramfs")
    description = "unified kernel image: stub + .linux + .initrd + .cmdline + .osrel + .uname"

    def inputs(self, ctx: Context) -> dict[str, str]:
        stub = ctx.config.uki.stub
        if not stub.is_file():
            raise BuildError(f"EFI stub {stub} not found", "apt-get install systemd-boot-efi")
        return {
            "cmdline": ctx.config.kernel.cmdline,
            "stub": ctx.file_input(stub),
            "os-release": os_release(ctx.config.uki.os_name),
            "sbat": sbat_line().decode(),
            "builder code": ctx.code_input("stages/uki.py", "uki.py"),
        }

    def outputs(self, ctx: Context) -> list[Path]:
        return [uki_path(ctx.config)]

    def summary(self, ctx: Context) -> str:
        return f"{uki_path(ctx.config).stat().st_size / 2**20:.2f} MiB ({uki_path(ctx.config)})"

    def build(self, ctx: Context) -> None:
        kernel_dir = KernelStage.out_dir(ctx)
        contents = {
            ".osrel": os_release(ctx.config.uki.os_name).encode(),
            ".cmdline": ctx.config.kernel.cmdline.encode() + b"\n",
            ".uname": (kernel_dir / "release").read_text().strip().encode(),
            ".initrd": initramfs_path(ctx.config).read_bytes(),
            ".linux": (kernel_dir / "bzImage").read_bytes(),
        }
        image = uki.assemble(ctx.config.uki.stub.read_bytes(), contents, sbat_line())
        problems = uki.inspect(image).problems
        if problems:
            raise BuildError("assembled UKI is malformed: " + "; ".join(problems))
        tmp = uki_path(ctx.config).with_suffix(".tmp")
        tmp.write_bytes(image)
        tmp.replace(uki_path(ctx.config))


def uki_path(config: BuildConfig) -> Path:
    """build/mvirt-uos.efi"""
    return config.output_dir / UKI_NAME
