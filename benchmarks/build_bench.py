"""Build and boot figures of the µOS image: stage times, no-op `make uos`, incremental
rebuilds after typical edits (a one-line change in services/, a comment in kernel.config), each
as a ratio to the stage times of the same run, UKI size by part, and boot-to-ready under the
chosen accelerator next to a busybox-init baseline on the same kernel. Prints numbers and a
short table; asserts nothing.

    .venv/bin/python benchmarks/build_bench.py [--boots 3] [--cold] [--no-boot]

--cold builds every stage with an empty cache and output folder (compiles the kernel: ~10 min).
Without it, stage times are measured into a fresh output folder with the existing caches. The
edits are made in a copy of the checkout (its own output folder, the shared caches).
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from mvirt_build import config as configuration
from mvirt_build.accel import choose_accelerator
from mvirt_build.budget import COMPONENTS, component_of
from mvirt_build.compare import decompress
from mvirt_build.config import initramfs_image
from mvirt_build.console import watch
from mvirt_build.cpio import Archive, Entry
from mvirt_build.qemu import QemuMachine

ROOT = Path(__file__).resolve().parents[1]
BUILD = Path(sys.executable).parent / "mvirt-build"
UPTIME = re.compile(r"ready \(uptime (\d+\.\d+) s\)")
BUSYBOX_INIT = b"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t tmpfs tmpfs /run
/bin/busybox mount -t tmpfs tmpfs /tmp
read up _ < /proc/uptime
echo "pideisn: ready (uptime $up s)"
exec /bin/busybox sleep 3600
"""


def stage_times(cold: bool) -> dict[str, float]:
    """Seconds per stage, building into an empty output folder."""
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mvirt-bench-") as tmp:
        args = [str(BUILD), "--output-dir", f"{tmp}/out"]
        if cold:
            args += ["--cache-dir", f"{tmp}/cache"]
        for stage in ("kernel", "rootfs", "initramfs", "uki"):
            started = time.monotonic()
            subprocess.run([*args, stage], cwd=ROOT, check=True, capture_output=True)
            times[stage] = time.monotonic() - started
    return times


def timed(argv: list[str], cwd: Path) -> float:
    """Wall time of one command (which must succeed)."""
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def noop_times(argv: list[str], runs: int = 5) -> list[float]:
    """Wall times of `argv` (a build of the UKI) when everything is up to date."""
    timed(argv, ROOT)
    return [timed(argv, ROOT) for _ in range(runs)]


def copy_checkout(dest: Path) -> Path:
    """The checkout's tracked and unignored files, copied to `dest`."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def edit_times() -> dict[str, float]:
    """Seconds to bring the UKI up to date after typical edits, in a copy of the checkout."""
    with tempfile.TemporaryDirectory(prefix="mvirt-bench-edit-") as tmp:
        checkout = copy_checkout(Path(tmp) / "checkout")
        build = [str(BUILD), "--output-dir", str(checkout / "out"), "uki"]
        timed(build, checkout)
        found = {}
        service = checkout / "services/mvirt/__init__.py"
        service.write_text(service.read_text() + "BENCHMARK_EDIT = 1\n")
        found["one-line edit in services/ -> UKI"] = timed(build, checkout)
        fragment = checkout / "kernel/kernel.config"
        fragment.write_text(fragment.read_text() + "# a comment-only edit\n")
        found["comment in kernel.config -> UKI"] = timed(build, checkout)
        return found


def size_breakdown(cfg: configuration.BuildConfig) -> dict[str, int]:
    """Compressed bytes per part of the UKI (initramfs parts compressed separately)."""
    sizes = {"kernel": (cfg.output_dir / "kernel/bzImage").stat().st_size}
    raw = decompress(initramfs_image(cfg).read_bytes())
    import libarchive  # noqa: PLC0415

    parts: dict[str, bytearray] = {name: bytearray() for name in COMPONENTS}
    with libarchive.memory_reader(raw) as archive:
        for entry in archive:
            parts[component_of("/" + entry.pathname)].extend(b"".join(entry.get_blocks()))
    compressor = zstandard.ZstdCompressor(level=cfg.initramfs.compress_level)
    for name, blob in parts.items():
        sizes[name] = len(compressor.compress(bytes(blob))) if blob else 0
    sizes["UKI total"] = (cfg.output_dir / "mvirt-uos.efi").stat().st_size
    return sizes


def busybox_initramfs(dest: Path) -> Path:
    """An initramfs with static busybox as init, doing the same mounts and printing the line."""
    archive = Archive()
    archive.add(Entry("/bin/busybox", "file", 0o755, Path("/bin/busybox").read_bytes()))
    archive.add(Entry("/init", "file", 0o755, BUSYBOX_INIT))
    archive.add(Entry("/dev/console", "chardev", 0o600, rdev=(5, 1)))
    for folder in ("/proc", "/sys", "/dev", "/run", "/tmp"):
        archive.add(Entry(folder, "dir", 0o755))
    dest.write_bytes(zstandard.ZstdCompressor(level=19).compress(archive.write(0)))
    return dest


def ready_uptimes(
    cfg: configuration.BuildConfig, initrd: Path, boots: int, accel: str
) -> list[float]:
    """Kernel uptime printed on the ready line, over several direct-kernel boots."""
    found = []
    for _ in range(boots):
        machine = QemuMachine(accel=accel, kernel=cfg.output_dir / "kernel/bzImage",
                              initrd=initrd, cmdline=cfg.kernel.cmdline)  # fmt: skip
        result = watch(machine.command(), timeout=120, echo=None)
        match = UPTIME.search(result.ready_line or "")
        if not (result.ok and match):
            raise SystemExit(f"boot failed: {result.reason}\n" + "\n".join(result.tail))
        found.append(float(match.group(1)))
    return found


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--no-boot", action="store_true", help="Skip the boot measurements.")
    args = parser.parse_args()
    cfg = configuration.load(ROOT)

    times = stage_times(args.cold)
    total = sum(times.values())
    noop_make = noop_times(["make", "-s", "uos"])
    noop = noop_times([str(BUILD), "uki"])
    edits = edit_times()
    sizes = size_breakdown(cfg)

    print(f"stage times ({'cold' if args.cold else 'warm caches, empty output'}):")
    for stage, seconds in times.items():
        print(f"  {stage:<10} {seconds:7.1f} s")
    print(f"  {'total':<10} {total:7.1f} s")
    print("rebuilds (ratio: to the total stage time above):")
    print("| what | seconds | ratio |\n|---|---|---|")
    rows = {
        "no-op `make uos` (median of 5)": statistics.median(noop_make),
        "no-op `mvirt-build uki` (median of 5)": statistics.median(noop),
        **edits,
    }
    for what, seconds in rows.items():
        print(f"| {what} | {seconds:.2f} | {seconds / total:.3f} |")
    print("UKI size by part (compressed):")
    for name, size in sizes.items():
        print(f"  {name:<15} {size / 2**20:6.2f} MiB")
    if args.no_boot:
        return
    accel = choose_accelerator(cfg.cache_dir, None, cfg.output_dir / "kernel/bzImage")
    with tempfile.TemporaryDirectory() as tmp:
        baseline = ready_uptimes(
            cfg, busybox_initramfs(Path(tmp) / "bb.cpio.zst"), args.boots, accel
        )
    ours = ready_uptimes(cfg, initramfs_image(cfg), args.boots, accel)
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"boot to ready ({accel}, direct kernel boot, median of {args.boots}, kernel uptime):")
    print("| init | ready at | ratio |\n|---|---|---|")
    print(f"| busybox sh | {b:.2f} s | 1.00 |")
    print(f"| pideisn (Python) | {o:.2f} s | {o / b:.2f} |")


if __name__ == "__main__":
    main()
