"""Mount the image's /usr: a read-only squashfs file in the initramfs, attached to a loop device.

Images built with `UsrImage=squashfs` keep all of /usr in `/usr.squashfs` and unpack only the
files PID 1 starts with (docs/pideisn.md, "The /usr image"). PID 1 mounts the image at
IMAGE_MOUNT and then, before anything else reads from /usr, a read-only overlay on /usr: the
unpacked early files on top, the image below. The early files (the interpreter, libc, the
bytecode of pideisn's start) are read from RAM as before, by PID 1 and by every service that
runs Python; everything else is decompressed from the image when it is first read. The image
holds the early files too, so a reader sees the same tree either way.

A loop device is configured with LOOP_CONFIGURE (Linux 5.8): the backing file, read-only, and
autoclear, so the device is released with the last unmount.
"""

from __future__ import annotations

import fcntl
import os
import sys

from mvirt.pideisn import syscalls

# Where the builder puts the image (mvirt_build.usr_image.IMAGE_PATH: the two must agree).
IMAGE = "/usr.squashfs"
MOUNT_POINT = "/usr"
IMAGE_MOUNT = "/run/usr.squashfs"
LOOP_CONTROL = "/dev/loop-control"
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4
# struct loop_config: u32 fd, u32 block_size, struct loop_info64 (232 bytes), u64 reserved[8].
LOOP_CONFIG_SIZE = 304
LO_FLAGS_OFFSET = 8 + 52  # loop_info64.lo_flags


def loop_config(fd: int) -> bytes:
    """struct loop_config for a read-only, autoclearing device backed by `fd`."""
    config = bytearray(LOOP_CONFIG_SIZE)
    config[0:4] = fd.to_bytes(4, "little")
    flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
    config[LO_FLAGS_OFFSET : LO_FLAGS_OFFSET + 4] = flags.to_bytes(4, "little")
    return bytes(config)


def attach(image: str, control: str = LOOP_CONTROL) -> tuple[str, int]:
    """Attach `image` read-only to a free loop device: its path (/dev/loopN) and an open
    descriptor of it. Keep the descriptor until the device is mounted: with autoclear, the
    kernel detaches the device as soon as nothing has it open or mounted."""
    control_fd = os.open(control, os.O_RDWR | os.O_CLOEXEC)
    try:
        number = fcntl.ioctl(control_fd, LOOP_CTL_GET_FREE)
    finally:
        os.close(control_fd)
    device = f"{os.path.dirname(control)}/loop{number}"
    backing = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    try:
        loop_fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(loop_fd, LOOP_CONFIGURE, loop_config(backing))
        except BaseException:
            os.close(loop_fd)
            raise
    finally:
        os.close(backing)  # the loop device holds its own reference
    return device, loop_fd


def mount(
    image: str = IMAGE, target: str = MOUNT_POINT, image_mount: str = IMAGE_MOUNT
) -> str | None:
    """Mount `image` at `image_mount` and the overlay of `target` over it, if the image is
    there; the loop device used, else None.

    Raises OSError when the image is there but cannot be mounted (the caller logs it: the
    services that need /usr will then fail to start, PID 1 itself goes on); a loop device
    that was not mounted is released again.
    """
    if not os.path.exists(image):
        return None
    flags = syscalls.MS_RDONLY | syscalls.MS_NODEV | syscalls.MS_NOSUID
    os.makedirs(image_mount, mode=0o755, exist_ok=True)
    device, loop_fd = attach(image)
    try:
        syscalls.mount(device, image_mount, "squashfs", flags)
    finally:
        os.close(loop_fd)
    # The upper layer is listed first: `target` as it is now (the early files), the image below.
    try:
        syscalls.mount("overlay", target, "overlay", flags, f"lowerdir={target}:{image_mount}")
    except OSError:
        syscalls.umount(image_mount, syscalls.MNT_DETACH)
        raise
    # Import path caches hold the early /usr's directory listings (with the same mtimes).
    for finder in list(sys.path_importer_cache.values()):
        invalidate = getattr(finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()
    return device
