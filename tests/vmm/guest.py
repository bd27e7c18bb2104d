"""Guests for the boot tests: the project's kernel and UKI from the build pipeline, and a small
busybox initramfs made here (a shell on the serial console, so tests can look inside).

Where the build artifacts are (``build/`` of the checkout) can be overridden with
``MVIRT_TEST_KERNEL`` and ``MVIRT_TEST_UKI``. A kernel whose virtio drivers are modules can be
used by listing them, in load order, in ``MVIRT_TEST_MODULES`` (colon-separated .ko paths).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KERNEL_CANDIDATES = ("build/bzImage", "build/kernel/bzImage", "build/vmlinuz", "build/kernel.img")
UKI_CANDIDATES = ("build/mvirt-uos.efi",)
BUSYBOX = "/bin/busybox"
PROMPT = "guest# "
READY = "mvirt-test-guest: ready"

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order 2>/dev/null); do insmod "/lib/modules/$m"; done
echo "{READY}"
export PS1='{PROMPT}'
exec setsid cttyhack sh
"""


def _first(env: str, candidates: tuple[str, ...]) -> Path | None:
    if os.environ.get(env):
        path = Path(os.environ[env])
        return path if path.is_file() else None
    for candidate in candidates:
        if (REPO / candidate).is_file():
            return REPO / candidate
    return None


def find_kernel() -> Path | None:
    """The kernel to boot directly, or None."""
    return _first("MVIRT_TEST_KERNEL", KERNEL_CANDIDATES)


def find_uki() -> Path | None:
    """The project's UKI, or None."""
    return _first("MVIRT_TEST_UKI", UKI_CANDIDATES)


def make_initramfs(dest: Path) -> Path:
    """A busybox initramfs (newc cpio) whose init prints READY and opens a shell on ttyS0."""
    root = dest.parent / "initramfs-root"
    for sub in ("bin", "proc", "sys", "dev", "lib/modules"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    modules = [m for m in os.environ.get("MVIRT_TEST_MODULES", "").split(":") if m]
    for module in modules:
        shutil.copy2(module, root / "lib/modules" / Path(module).name)
    (root / "modules.order").write_text("".join(Path(m).name + "\n" for m in modules))
    os.mknod(root / "dev/console", 0o600 | 0o020000, os.makedev(5, 1))
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    with open(dest, "wb") as out:
        subprocess.run(
            [BUSYBOX, "cpio", "-o", "-H", "newc"],
            cwd=root,
            input=files,
            stdout=out,
            check=True,
            stderr=subprocess.DEVNULL,
        )
    return dest


def make_esp_disk(uki: Path, dest: Path) -> Path:
    """A GPT disk with one EFI system partition holding ``uki`` as EFI/BOOT/BOOTX64.EFI."""
    size_mb = max(64, uki.stat().st_size // (1024 * 1024) + 16)
    with open(dest, "wb") as disk:
        disk.truncate(size_mb * 1024 * 1024)
    subprocess.run(
        ["sfdisk", "--quiet", str(dest)],
        input=b"label: gpt\nstart=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n",
        check=True,
    )
    offset = 2048 * 512
    part_size_kb = (size_mb * 1024 * 1024 - offset - 34 * 512) // 1024
    subprocess.run(
        ["mkfs.vfat", "-F", "32", "--offset", "2048", str(dest), str(part_size_kb)],
        capture_output=True,
        check=True,
    )
    image = f"{dest}@@{offset}"
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for folder in ("::/EFI", "::/EFI/BOOT"):
        subprocess.run(["mmd", "-i", image, folder], check=True, env=env)
    subprocess.run(["mcopy", "-i", image, str(uki), "::/EFI/BOOT/BOOTX64.EFI"], check=True, env=env)
    return dest
