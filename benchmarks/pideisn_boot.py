"""pideisn boot timing under TCG next to busybox init + udhcpc on the same kernel.

What is compared: the image with the demo overlay (`mvirt-build --extra-tree
tests/e2e/overlay-demo`, built into build/demo/ by this script: pideisn with its one demo
service, `hello`, a Python program listening on :8080, instead of the node's daemons) against
busybox init + udhcpc + busybox httpd on :8080, on the same kernel. (The default image starts
mvirt-log and mvirt-vmm; its boot is measured by benchmarks/node_boot.py.) The demo image
carries the whole node runtime (grpc, protobuf, zfs-fuse, qemu-img, firmware) in its
initramfs, as the squashfs image of /usr that pideisn mounts (UsrImage=squashfs), so copying
that image into the RAM root is part of what is measured.

Both images boot by direct kernel boot (the firmware's share is the same for both and not
what is measured) with QEMU user-mode networking and the build's command line. Measured from
the console's uptime stamps:

- first line: first line written by init (pideisn's `starting`, busybox's `start`)
- network:    DHCPv4 lease applied (pideisn's `network configured`, after udhcpc for busybox)
- ready:      services ready (pideisn's ready line; busybox: its httpd accepting on :8080)

The variants run interleaved (pideisn, pideisn IPv4 only, busybox, then again) and the load
average is printed: on a shared machine the ready ratio is the steady figure. The goal is a
ratio of 1.3 or less; docs/pideisn.md ("Measured") has the latest figures (1.69-1.80, and
1.44 without the node runtime since SLAAC stopped waiting for the kernel's link watcher; a
bare interpreter as PID 1 doing busybox's work at busybox's speed would reach 1.14-1.27) and
where the time goes.

pideisn runs three times: as built (DHCPv4 + SLAAC + DHCPv6, one demo service), with
`mvirt.net.ipv6=0`, which does what the busybox baseline does (DHCPv4 only), and as built but
without /usr.squashfs (the node's runtime): pideisn on its interpreter alone. A fourth boot
of that archive runs a bare `python3 -S` as PID 1 that only prints its uptime: the earliest
first line any Python init can have here. Added to busybox's own first-line-to-ready time it
gives the best ratio a Python PID 1 could reach doing busybox's work at busybox's speed.
Also printed: what pideisn adds to the initramfs (its bytecode, zstd-compressed alone) and
PID 1's resident memory after boot.

Usage: .venv/bin/python benchmarks/pideisn_boot.py [--runs N] [--cmdline WORDS]
(the kernel and rootfs come from the build cache; the demo image is rebuilt when its inputs
changed)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from mvirt_build import config
from mvirt_build.compare import decompress
from mvirt_build.config import initramfs_image
from mvirt_build.cpio import Archive, Entry
from mvirt_build.qemu import QemuMachine
from mvirt_build.stages.initramfs import INTERPRETER, compress

ROOT = Path(__file__).resolve().parents[1]
DEMO_OVERLAY = ROOT / "tests" / "e2e" / "overlay-demo"
DEMO_OUTPUT = ROOT / "build" / "demo"
BUSYBOX = Path("/bin/busybox")
NET = ["-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0"]
STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]")
BB_STAMP = re.compile(r"bb: (\w+) (\d+\.\d+)")
BARE_STAMP = re.compile(r"bare: start (\d+\.\d+)")
# PID 1 that is only the interpreter: the floor of any Python init on this kernel and emulator.
BARE_INIT = f"""#!{INTERPRETER} -S
import os, time
os.write(1, b"bare: start %.2f\\n" % time.clock_gettime(time.CLOCK_BOOTTIME))
while True:
    time.sleep(60)
"""

BUSYBOX_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "bb: start $(cut -d' ' -f1 /proc/uptime)"
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -f -q -n -T 1 -t 20 -s /udhcpc.sh >/dev/null 2>&1
echo "bb: network $(cut -d' ' -f1 /proc/uptime)"
mkdir -p /www && echo hello > /www/index.html
httpd -p 8080 -h /www
until nc 127.0.0.1 8080 </dev/null >/dev/null 2>&1; do sleep 0.01; done
echo "bb: ready $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"""

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
"""


def busybox_initramfs(dest: Path) -> Path:
    """A zstd newc initramfs: static busybox, /init and the udhcpc script."""
    archive = Archive()
    archive.add(Entry("/bin/busybox", "file", 0o755, BUSYBOX.read_bytes()))
    archive.add(Entry("/bin/sh", "symlink", 0o777, target="busybox"))
    archive.add(Entry("/init", "file", 0o755, BUSYBOX_INIT.encode()))
    archive.add(Entry("/udhcpc.sh", "file", 0o755, UDHCPC_SCRIPT.encode()))
    archive.add(Entry("/dev/console", "chardev", 0o600, rdev=(5, 1)))
    for folder in ("/proc", "/sys", "/etc", "/tmp"):
        archive.add(Entry(folder, "dir", 0o755))
    dest.write_bytes(zstandard.ZstdCompressor(level=19).compress(archive.write(0)))
    return dest


def bare_initramfs(alone: Path, dest: Path) -> Path:
    """The demo initramfs without the node runtime, with BARE_INIT as /bare-init (booted with
    rdinit=/bare-init): an uncompressed archive ahead of the compressed one."""
    archive = Archive()
    archive.add(Entry("/bare-init", "file", 0o755, BARE_INIT.encode()))
    dest.write_bytes(archive.write(0) + alone.read_bytes())
    return dest


def run_machine(machine: QemuMachine, until: str, timeout: float = 300) -> list[str]:
    """Boot, collect the console until a line contains `until`, then stop QEMU."""
    proc = subprocess.Popen(
        machine.command(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if until in line or time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return lines


def pideisn_times(lines: list[str]) -> dict[str, float]:
    """Uptime stamps of pideisn's first line, network configured, ready; and its RSS."""
    out: dict[str, float] = {}
    for line in lines:
        stamp = STAMP.match(line)
        if stamp is None or "pideisn:" not in line:
            continue
        value = float(stamp.group(1))
        if "first" not in out:
            out["first"] = value
        if "network configured" in line or "network not fully configured" in line:
            out.setdefault("network", value)
        if "pideisn: ready" in line:
            out["ready"] = value
        match = re.search(r"resident memory (\d+\.\d+) MiB", line)
        if match:
            out["rss"] = float(match.group(1))
    return out


def bare_times(lines: list[str]) -> dict[str, float]:
    """The uptime stamp of the bare interpreter's only line."""
    for line in lines:
        match = BARE_STAMP.search(line)
        if match:
            return {"first": float(match.group(1))}
    return {}


def busybox_times(lines: list[str]) -> dict[str, float]:
    """Uptime stamps the busybox init printed."""
    out: dict[str, float] = {}
    for line in lines:
        match = BB_STAMP.search(line)
        if match:
            out[{"start": "first"}.get(match.group(1), match.group(1))] = float(match.group(2))
    return out


def main() -> None:
    """Run the comparison and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cmdline", default="", help="words added to every boot's kernel command line"
    )
    args = parser.parse_args()
    cfg = build_demo_image()
    kernel = cfg.output_dir / "kernel/bzImage"
    initrd = initramfs_image(cfg)
    if not BUSYBOX.is_file():
        sys.exit("needs /bin/busybox (Debian package busybox-static)")
    work = Path(tempfile.mkdtemp(prefix="pideisn-bench-"))
    try:
        bb_initrd = busybox_initramfs(work / "busybox.cpio.zst")
        alone = without_usr_image(initrd, work / "alone.cpio.lz4")
        cmdline = f"{cfg.kernel.cmdline} {args.cmdline}".strip()
        bare = (bare_initramfs(alone, work / "bare.cpio"), cmdline + " rdinit=/bare-init")
        variants = {
            "pideisn": (initrd, cmdline, "resident memory", pideisn_times),
            "pideisn ipv4 only": (
                initrd,
                cmdline + " mvirt.net.ipv6=0",
                "resident memory",
                pideisn_times,
            ),
            "pideisn, no node runtime": (
                alone,
                cmdline,
                "resident memory",
                pideisn_times,
            ),
            "busybox + udhcpc": (bb_initrd, cmdline, "bb: ready", busybox_times),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        bare_firsts: list[float] = []
        for _ in range(args.runs):
            for name, (rd, cmdline, until, parse) in variants.items():
                machine = QemuMachine(accel="tcg", kernel=kernel, initrd=rd, cmdline=cmdline)
                machine.extra += NET
                times = parse(run_machine(machine, until))
                if {"first", "network", "ready"} <= times.keys():
                    results[name].append(times)
                else:
                    print(f"{name}: incomplete boot, run ignored ({times})")
            machine = QemuMachine(accel="tcg", kernel=kernel, initrd=bare[0], cmdline=bare[1])
            machine.extra += NET
            bare_firsts += bare_times(run_machine(machine, "bare: start", timeout=120)).values()
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nTCG, direct kernel boot, median of {args.runs} runs (uptime in seconds)")
        print(f"demo image {initrd.stat().st_size / 2**20:.1f} MiB, load average {load}\n")
        header = f"{'init':<24} {'first line':>10} {'network':>8} {'ready':>7}"
        header += f" {'first→net':>10} {'first→ready':>12}"
        print(header)
        medians: dict[str, dict[str, float]] = {}
        for name, runs in results.items():
            if not runs:
                print(f"{name:<24} (no complete run)")
                continue
            med = {k: statistics.median(r[k] for r in runs) for k in ("first", "network", "ready")}
            medians[name] = med
            print(
                f"{name:<24} {med['first']:>10.2f} {med['network']:>8.2f} {med['ready']:>7.2f}"
                f" {med['network'] - med['first']:>10.2f} {med['ready'] - med['first']:>12.2f}"
            )
        base = medians.get("busybox + udhcpc")
        if base:
            for name in ("pideisn", "pideisn ipv4 only", "pideisn, no node runtime"):
                if name in medians:
                    ratio = medians[name]["ready"] / base["ready"]
                    print(f"ready (uptime) ratio {name} / busybox: {ratio:.2f}")
            if bare_firsts:
                # A Python PID 1 that, once its interpreter is up, did busybox's work (DHCPv4,
                # a web server) as fast as busybox: the best ratio any Python init reaches.
                first = statistics.median(bare_firsts)
                floor = (first + base["ready"] - base["first"]) / base["ready"]
                print(
                    f"bare python3 -S as PID 1: first line {first:.2f};"
                    f" with busybox's work after it, ratio {floor:.2f}"
                )
        rss = [r["rss"] for r in results["pideisn"] if "rss" in r]
        if rss:
            print(f"pideisn resident memory after boot: {statistics.median(rss):.1f} MiB")
        print(pideisn_size_report(cfg))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def without_usr_image(initrd: Path, dest: Path) -> Path:
    """The demo initramfs without /usr.squashfs: pideisn and its demo service on the early
    files alone (the interpreter, its libraries, pideisn), as an image without the node's
    runtime would be."""
    import libarchive  # noqa: PLC0415 - only this variant needs to read the archive back

    archive = Archive()
    with libarchive.memory_reader(decompress(initrd.read_bytes())) as reader:
        for entry in reader:
            path = "/" + entry.pathname.lstrip("./")
            mode = entry.mode & 0o7777
            if path in {"/usr.squashfs", "/"}:
                continue
            if entry.isdir:
                archive.add(Entry(path, "dir", mode))
            elif entry.issym:
                archive.add(Entry(path, "symlink", 0o777, target=entry.linkpath))
            elif entry.ischr:
                archive.add(Entry(path, "chardev", mode, rdev=(entry.rdevmajor, entry.rdevminor)))
            else:
                archive.add(Entry(path, "file", mode, b"".join(entry.get_blocks())))
    dest.write_bytes(compress(archive.write(0), "lz4", 12))
    return dest


def build_demo_image() -> config.BuildConfig:
    """Build (or find up to date) the demo image in build/demo/; its configuration."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "mvirt-build"), "--output-dir", str(DEMO_OUTPUT),
         "--extra-tree", str(DEMO_OVERLAY), "uki"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"building the demo image failed:\n{proc.stderr}{proc.stdout}")
    return config.load(ROOT, output_dir=DEMO_OUTPUT)


def pideisn_size_report(cfg: config.BuildConfig) -> str:
    """What pideisn's own bytecode adds to the initramfs, raw and zstd-compressed."""
    import libarchive  # noqa: PLC0415 - only the report needs to read the archive back

    data = decompress(initramfs_image(cfg).read_bytes())
    own = bytearray()
    with libarchive.memory_reader(data) as archive:
        for entry in archive:
            if "/mvirt/pideisn/" in entry.pathname or entry.pathname.lstrip("./") == "init":
                for block in entry.get_blocks():
                    own += block
    packed = len(zstandard.ZstdCompressor(level=19).compress(bytes(own)))
    return f"pideisn in the initramfs: {len(own) / 1024:.0f} KiB raw, {packed / 1024:.0f} KiB zstd"


if __name__ == "__main__":
    main()
