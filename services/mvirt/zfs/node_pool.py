"""The node's pool: zfs-fuse started, the pool on the configured disk imported (or created on
the first boot), mvirt-zfs's state kept on the pool, then zfs-fuse supervised until SIGTERM.

In the image, pideisn runs ``python3 -m mvirt.zfs.node_pool --disk DISK [--pool NAME]`` when
the kernel command line has ``mvirt.zfs.disk=DISK`` (docs/zfs.md). The disk must be a block
device under /dev/. The disk is reached through a device node of its own in a private folder
(the same device number), so ``zpool import -d`` reads that disk and nothing else in /dev.

The state dataset ``POOL/state`` is mounted at the state folder (``--state-dir``, mvirt-zfs's
``--data-dir``): the node's root is in RAM, and mvirt-zfs's records must outlive a reboot
together with the volumes they describe.

zfs-fuse logs to syslog, which the node does not have: when it exits at start, its reason is
not on the console; the folders it needs are made here. Ready when ``--ready-file`` exists.
Exit status 0 after SIGTERM once zfs-fuse stopped; 1 when the pool cannot be brought up (the
reason on stderr) or zfs-fuse ends by itself.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

POOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._:-]{0,63}")
STATE_DATASET = "state"
ANSWER_TIMEOUT = 60.0
COMMAND_TIMEOUT = 300.0


class PoolError(Exception):
    """The pool cannot be brought up; the message says why and what to do."""


def check_disk(value: str) -> Path:
    """``value`` as a block device under /dev/ (no relative parts, no other folder)."""
    path = Path(value)
    if not value.startswith("/dev/") or ".." in path.parts or "\0" in value:
        raise PoolError(f"mvirt.zfs.disk={value!r} must name a block device under /dev/")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise PoolError(f"mvirt.zfs.disk={value}: {exc.strerror}") from None
    if not stat.S_ISBLK(mode):
        raise PoolError(f"mvirt.zfs.disk={value} is not a block device")
    return path


def check_pool_name(value: str) -> str:
    """A pool name zpool accepts: a letter, then letters, digits, '.', '_', ':' or '-'."""
    if POOL_NAME.fullmatch(value) is None or value in ("mirror", "raidz", "spare", "log"):
        raise PoolError(
            f"mvirt.zfs.pool={value!r} is not a pool name: use up to 64 letters, digits, "
            "'.', '_', ':' or '-', starting with a letter"
        )
    return value


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """One zpool/zfs command (an argument list, never a shell)."""
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PoolError(f"{argv[0]}: {exc}") from None


def private_node(disk: Path, folder: Path) -> Path:
    """A device node for `disk` alone in `folder` (what `zpool import -d` scans)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    node = folder / "disk"
    with_device = os.stat(disk).st_rdev
    try:
        if node.exists() and os.stat(node).st_rdev == with_device:
            return node
        node.unlink(missing_ok=True)
        os.mknod(node, 0o600 | stat.S_IFBLK, with_device)
    except OSError as exc:
        raise PoolError(f"cannot make a device node for {disk} in {folder}: {exc}") from None
    return node


def found_pools(listing: str) -> list[str]:
    """Pool names in the output of `zpool import -d DIR` (lines `pool: NAME`)."""
    return re.findall(r"^\s*pool:\s*(\S+)\s*$", listing, re.MULTILINE)


def bring_up(disk: Path, pool: str, devices: Path, zpool: str = "zpool") -> str:
    """Import `pool` from `disk`, or create it there when the disk holds no pool. Returns
    "present", "imported" or "created". A disk holding another pool is left alone."""
    if run([zpool, "list", "-H", "-o", "name", pool]).returncode == 0:
        return "present"
    node = private_node(disk, devices)
    listing = run([zpool, "import", "-d", str(devices)])
    names = found_pools(listing.stdout + listing.stderr)
    if pool in names:
        imported = run([zpool, "import", "-d", str(devices), "-f", pool])
        if imported.returncode != 0:
            raise PoolError(f"zpool import {pool} from {disk}: {imported.stderr.strip()}")
        return "imported"
    if names:
        raise PoolError(
            f"{disk} holds pool(s) {', '.join(names)}, not {pool}: boot with "
            f"mvirt.zfs.pool={names[0]} to use it (the disk is left as it is)"
        )
    created = run([zpool, "create", "-m", "none", pool, str(node)])
    if created.returncode != 0:
        raise PoolError(f"zpool create {pool} on {disk}: {created.stderr.strip()}")
    return "created"


def mount_state(pool: str, state_dir: Path, zfs: str = "zfs") -> None:
    """`POOL/state` mounted at `state_dir` (made on the first boot)."""
    dataset = f"{pool}/{STATE_DATASET}"
    state_dir.mkdir(parents=True, exist_ok=True)
    if run([zfs, "get", "-H", "-o", "value", "type", dataset]).returncode != 0:
        made = run([zfs, "create", "-o", f"mountpoint={state_dir}", dataset])
        if made.returncode != 0:
            raise PoolError(f"zfs create {dataset}: {made.stderr.strip()}")
        return
    current = run([zfs, "get", "-H", "-o", "value", "mountpoint", dataset]).stdout.strip()
    if current != str(state_dir):
        changed = run([zfs, "set", f"mountpoint={state_dir}", dataset])
        if changed.returncode != 0:
            raise PoolError(f"zfs set mountpoint on {dataset}: {changed.stderr.strip()}")
    mounted = run([zfs, "get", "-H", "-o", "value", "mounted", dataset]).stdout.strip()
    if mounted != "yes":
        done = run([zfs, "mount", dataset])
        if done.returncode != 0:
            raise PoolError(f"zfs mount {dataset}: {done.stderr.strip()}")


def wait_for_daemon(daemon: subprocess.Popen[bytes], zpool: str) -> None:
    """Until zfs-fuse answers `zpool list` (it exits or times out: PoolError)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while run([zpool, "list"]).returncode != 0:
        if daemon.poll() is not None:
            raise PoolError(f"zfs-fuse exited with status {daemon.returncode} at start")
        if time.monotonic() > deadline:
            raise PoolError(f"zfs-fuse did not answer `zpool list` in {ANSWER_TIMEOUT:.0f} s")
        time.sleep(0.2)  # polling the daemon's socket until it answers (bounded above)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m mvirt.zfs.node_pool",
        description="Start zfs-fuse, import (or on first use create) the node's pool on a "
        "disk, mount mvirt-zfs's state from the pool, and supervise zfs-fuse.",
    )
    parser.add_argument("--disk", required=True, help="block device under /dev/")
    parser.add_argument("--pool", default="mvirt", help="pool name (default: mvirt)")
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/mvirt/zfs"))
    parser.add_argument("--ready-file", type=Path, default=Path("/run/mvirt/zfs-pool.ready"))
    # Under /dev: /run is mounted nodev, where a device node cannot be opened.
    parser.add_argument("--devices", type=Path, default=Path("/dev/mvirt-zfs"))
    parser.add_argument("--zfs-fuse", default="zfs-fuse")
    parser.add_argument("--zpool", default="zpool")
    parser.add_argument("--zfs", default="zfs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    stop = {"asked": False}

    def on_term(_signum: int, _frame: object) -> None:
        stop["asked"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        disk = check_disk(options.disk)
        pool = check_pool_name(options.pool)
    except PoolError as exc:
        print(f"node pool: {exc}", file=sys.stderr)
        return 2
    # zfs-fuse's folders: its socket (/var/run/zfs), lock (/var/lock/zfs), pool cache; the
    # image links /var/run and /var/lock into the empty /run.
    for folder in ("/run/zfs", "/run/lock/zfs", "/var/lib/zfs", "/etc/zfs"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        daemon = subprocess.Popen([options.zfs_fuse, "--no-daemon", "--no-kstat-mount"])
    except OSError as exc:
        print(f"node pool: cannot start {options.zfs_fuse}: {exc}", file=sys.stderr)
        return 1
    try:
        wait_for_daemon(daemon, options.zpool)
        how = bring_up(disk, pool, options.devices, options.zpool)
        mount_state(pool, options.state_dir, options.zfs)
    except PoolError as exc:
        print(f"node pool: {exc}", file=sys.stderr)
        daemon.terminate()
        daemon.wait()
        return 1
    print(f"node pool: pool {pool} on {disk} {how}", flush=True)
    options.ready_file.parent.mkdir(parents=True, exist_ok=True)
    options.ready_file.write_text(f"{pool}\n")
    while not stop["asked"]:
        try:
            daemon.wait(timeout=1.0)  # zfs-fuse's exit, or SIGTERM seen within a second
            break
        except subprocess.TimeoutExpired:
            continue
    options.ready_file.unlink(missing_ok=True)
    if daemon.poll() is None:
        daemon.terminate()
        daemon.wait()
        return 0
    print(f"node pool: zfs-fuse exited with status {daemon.returncode}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
