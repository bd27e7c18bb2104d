"""Mounting the image's /usr (usr_image) against the real kernel: a squashfs on a loop device
under the early files (overlayfs), in a mount namespace of its own (needs root; CI runs as
root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Run inside `unshare --mount`: prints what a user of /usr would see after the mount.
CHILD = """
import errno, os, sys
from mvirt.pideisn import usr_image
image, target, image_mount = sys.argv[1:4]
sys.path.insert(0, target)
import early_module  # the import system now caches the early folder's listing
try:
    device = usr_image.mount(image, target, image_mount)
except OSError as exc:
    print("error", exc.errno)
    backing = []
    for name in os.listdir("/sys/block"):
        try:
            with open(f"/sys/block/{name}/loop/backing_file") as f:
                backing.append(f.read().strip())
        except OSError:
            pass
    print("attached", image in backing)
    print("mounted", os.path.ismount(image_mount))
    sys.exit(0)
print("device", device)
import late_module
print("late", late_module.VALUE)
print("early", open(os.path.join(target, "shared.txt")).read())
try:
    open(os.path.join(target, "new.txt"), "w")
except OSError as exc:
    print("write", errno.errorcode[exc.errno])
"""


def run_child(tmp: Path, image: Path) -> dict[str, str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices and mounts (CI runs as root)")
    if not Path("/dev/loop-control").exists() or shutil.which("unshare") is None:
        pytest.skip("needs /dev/loop-control and unshare(1)")
    target = tmp / "usr"
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", CHILD,
         str(image), str(target), str(tmp / "image-mount")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines())


def early_tree(tmp: Path) -> None:
    (tmp / "usr").mkdir()
    (tmp / "usr/early_module.py").write_text("")
    (tmp / "usr/shared.txt").write_text("from RAM")


def test_the_image_appears_under_the_early_files_and_imports_find_it(tmp_path):
    if shutil.which("mksquashfs") is None:
        pytest.skip("needs mksquashfs (squashfs-tools, installed by scripts/bootstrap.sh)")
    early_tree(tmp_path)
    content = tmp_path / "content"
    content.mkdir()
    (content / "early_module.py").write_text("")
    (content / "shared.txt").write_text("from the image")
    (content / "late_module.py").write_text("VALUE = 42\n")
    image = tmp_path / "usr.squashfs"
    subprocess.run(
        ["mksquashfs", str(content), str(image), "-quiet", "-no-progress", "-comp", "zstd"],
        check=True, capture_output=True,
    )  # fmt: skip
    seen = run_child(tmp_path, image)
    assert seen["device"].startswith("/dev/loop")
    assert seen["late"] == "42"  # found although the early folder's listing was cached
    assert seen["early"] == "from RAM"  # the early files lie on top
    assert seen["write"] == "EROFS"


def test_an_image_that_cannot_be_mounted_leaves_no_loop_device_or_mount(tmp_path):
    early_tree(tmp_path)
    image = tmp_path / "usr.squashfs"
    image.write_bytes(b"not a filesystem" * 4096)
    seen = run_child(tmp_path, image)
    assert seen["error"] == "22"  # EINVAL from mount(2), raised to the caller
    assert seen["attached"] == "False"
    assert seen["mounted"] == "False"
