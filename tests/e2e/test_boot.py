"""The built UKI boots to pideisn's ready line under QEMU; a broken one is reported as failed."""

import re
from pathlib import Path

import pytest

from mvirt_build import config, uki

from .conftest import ROOT, mvirt_build

pytestmark = pytest.mark.e2e


def test_uki_boots_through_ovmf_to_the_ready_line(built_uki):
    proc = mvirt_build("boot", "--no-build", "--timeout", "240")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"pideisn: ready \(uptime \d+\.\d\d s\)", proc.stdout)
    assert "boot: ready after" in proc.stdout
    # UEFI really ran: OVMF's boot manager started the disk's loader
    assert "BdsDxe: starting" in proc.stdout


def test_direct_kernel_boot_reaches_the_ready_line(built_uki):
    proc = mvirt_build("boot", "--no-build", "--firmware", "direct", "--timeout", "180")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "pideisn: ready" in proc.stdout


def test_uki_with_a_broken_initramfs_is_a_failed_boot(built_uki, tmp_path: Path):
    layout = uki.inspect(built_uki.read_bytes())
    contents = {name: layout.section(name).data for name in uki.APPENDED}  # type: ignore[union-attr]
    contents[".initrd"] = b"\x28\xb5\x2f\xfd" + b"\xff" * 4096  # a zstd magic and garbage
    cfg = config.load(ROOT)
    broken = tmp_path / "broken.efi"
    broken.write_bytes(uki.assemble(cfg.uki.stub.read_bytes(), contents, b""))
    proc = mvirt_build("boot", "--uki", str(broken), "--timeout", "240")
    assert proc.returncode == 1
    assert "boot failed" in proc.stderr
    assert "pideisn: ready" not in proc.stdout
