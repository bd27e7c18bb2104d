"""Two clean builds of the same inputs, in different folders at different times, give the same
initramfs and unsigned UKI, byte for byte. Each build has its own output folder and its own
cache, sharing only the built kernel (a kernel build takes ~10 minutes; its own
reproducibility is checked by benchmarks/kernel_reproducibility.py) and mkosi's downloaded
packages: the rootfs tree, the initramfs and the UKI are all made anew."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mvirt_build import config
from mvirt_build.compare import diff_files
from mvirt_build.config import initramfs_image

from .conftest import BUILD, ROOT

pytestmark = pytest.mark.slow

ARTIFACTS = (initramfs_image(config.load(ROOT)).name, "mvirt-uos.unsigned.efi")


def copy_checkout(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def clean_build(folder: Path, epoch: str, shared_cache: Path) -> Path:
    checkout = copy_checkout(folder)
    cache = folder.parent / f"{folder.name}-cache"
    cache.mkdir()
    for name in ("kernel", "mkosi-packages"):
        if (shared_cache / name).is_dir():
            (cache / name).symlink_to(shared_cache / name)
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch, "MVIRT_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [str(BUILD), "--output-dir", str(checkout / "out"), "uki"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rootfs     done" in proc.stderr  # the rootfs really was built again
    return checkout / "out"


def test_two_clean_builds_are_bit_identical(tmp_path, built_uki):
    epoch = (
        os.environ.get("SOURCE_DATE_EPOCH")
        or subprocess.run(
            ["git", "log", "-1", "--format=%ct"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    shared = config.load(ROOT).cache_dir
    first = clean_build(tmp_path / "one" / "mvirt", epoch, shared)
    second = clean_build(tmp_path / "two" / "a" / "longer" / "path" / "mvirt-copy", epoch, shared)
    report = []
    for name in ARTIFACTS:
        a, b = first / name, second / name
        sha_a = hashlib.sha256(a.read_bytes()).hexdigest()
        sha_b = hashlib.sha256(b.read_bytes()).hexdigest()
        print(f"{name:<24} {sha_a} {sha_b} {'same' if sha_a == sha_b else 'DIFFERENT'}")
        if sha_a != sha_b:
            report += diff_files(a, b)
    assert not report, "not reproducible:\n" + "\n".join(report)
