"""The node's /usr as one compressed read-only image inside the initramfs (`UsrImage=squashfs`).

The kernel unpacks every byte of the initramfs into its RAM root before PID 1 runs, and under
emulation that costs boot time in proportion to the bytes: the node's whole runtime (grpc,
cryptography, zfs-fuse, qemu-img, firmware: about 80 MiB) for a PID 1 that needs a few MiB of
it to reach the network. With an image, the archive holds everything outside /usr, the files
under /usr that PID 1 loads before it mounts the image (the interpreter, its libraries, the
bytecode of pideisn's start), and `/usr.squashfs`: all of /usr, the early files included,
lz4-compressed. pideisn mounts it over /usr through a loop device as its first step after the
API filesystems (docs/pideisn.md); files are then decompressed only when they are read, and
the RAM root holds the compressed image instead of the unpacked tree.

`mksquashfs` writes the image reproducibly: one fixed time for the image and every file, all
files owned by root, no extended attributes, whatever SOURCE_DATE_EPOCH the caller has set.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mvirt_build.cpio import Archive, Entry
from mvirt_build.errors import BuildError
from mvirt_build.run import run

# Where pideisn looks for the image (mvirt.pideisn.usr_image.IMAGE: the two must agree).
IMAGE_PATH = "/usr.squashfs"
MOUNT_POINT = "/usr"
# lz4 (high compression): 36 MiB for the node's 80 MiB of /usr. zstd level 19 makes 28 MiB,
# but the daemons decompress what they read while they start, and under emulation zstd made
# the node's first daemon about a second slower to start (measured in docs/pideisn.md).
TOOL = "mksquashfs"


def split(archive: Archive, early: set[str], mtime: int) -> Archive:
    """The archive to unpack at boot: what lies outside /usr, the `early` paths under /usr,
    and the image of all of /usr."""
    boot = Archive()
    usr: list[Entry] = []
    for entry in archive.sorted_entries():
        if entry.path == MOUNT_POINT:
            boot.add(entry)
        elif entry.path.startswith(MOUNT_POINT + "/"):
            usr.append(entry)
            if entry.path in early:
                boot.add(entry)
        else:
            boot.add(entry)
    boot.add(Entry(IMAGE_PATH, "file", 0o444, squashfs(usr, mtime)))
    return boot


def squashfs(entries: list[Entry], mtime: int) -> bytes:
    """A squashfs image whose root is /usr, holding `entries` (image paths under /usr)."""
    with tempfile.TemporaryDirectory(prefix="mvirt-usr-") as tmp:
        root = Path(tmp) / "usr"
        root.mkdir()
        os.chmod(root, 0o755)
        for entry in entries:
            host = root / entry.path[len(MOUNT_POINT) + 1 :]
            if entry.kind == "dir":
                host.mkdir(exist_ok=True)
            elif entry.kind == "file":
                host.write_bytes(entry.data)
            elif entry.kind == "symlink":
                host.symlink_to(entry.target)
            else:
                raise BuildError(f"{entry.path}: a {entry.kind} cannot go into the /usr image")
            if entry.kind != "symlink":
                os.chmod(host, entry.mode & 0o7777)
        # Every time is `mtime`: mksquashfs takes the image's own time from SOURCE_DATE_EPOCH
        # (which it refuses to combine with -all-time) and only lowers later file times to it.
        for host in [*sorted(root.rglob("*"), reverse=True), root]:
            os.utime(host, (mtime, mtime), follow_symlinks=False)
        image = Path(tmp) / "usr.squashfs"
        run(
            [TOOL, root, image, "-noappend", "-quiet", "-no-progress", "-all-root", "-no-xattrs",
             "-comp", "lz4", "-Xhc"],
            env={"SOURCE_DATE_EPOCH": str(mtime)},
            hint="mksquashfs comes with Debian's squashfs-tools (scripts/bootstrap.sh installs it)",
        )  # fmt: skip
        return image.read_bytes()
