"""The node's pool set-up (mvirt.zfs.node_pool) on a real block device: a loop device over a
sparse file, against the running zfs-fuse. First use creates the pool, a later boot imports
it with mvirt-zfs's state, a disk holding another pool is left alone; bad disks and names
are refused before zpool runs."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mvirt.zfs import node_pool
from mvirt.zfs.node_pool import PoolError

from .conftest import destroy_pool, zpool

_counter = itertools.count()


@pytest.fixture
def loop_disk(zfs_service: None, tmp_path: Path) -> Iterator[Path]:
    """A 256 MiB block device (a loop device over a sparse file), detached afterwards."""
    if shutil.which("losetup") is None or not Path("/dev/loop-control").exists():
        pytest.fail("loop devices are needed (util-linux losetup, /dev/loop-control)")
    image = tmp_path / "disk.img"
    with open(image, "wb") as file:
        file.truncate(256 << 20)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    yield Path(device)
    subprocess.run(["losetup", "--detach", device], check=False)


@pytest.fixture
def pool_names() -> Iterator[list[str]]:
    """Names for this test's pools; every one that exists afterwards is destroyed."""
    names = [f"mvnp{os.getpid()}x{next(_counter)}", f"mvnp{os.getpid()}x{next(_counter)}"]
    yield names
    for name in names:
        if zpool("list", name).returncode == 0:
            destroy_pool(name)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/tmp/disk.img", "must name a block device under /dev/"),
        ("vdb", "must name a block device under /dev/"),
        ("/dev/../tmp/disk.img", "must name a block device under /dev/"),
        ("/dev/null", "is not a block device"),
        ("/dev/mvirt-no-such-disk", "No such file or directory"),
    ],
)
def test_a_disk_that_is_not_a_block_device_under_dev_is_refused(value, message):
    with pytest.raises(PoolError, match=message):
        node_pool.check_disk(value)


@pytest.mark.parametrize("value", ["", "1pool", "a/b", "a b", "mirror", "x" * 65, "-f"])
def test_a_bad_pool_name_is_refused(value):
    with pytest.raises(PoolError, match="is not a pool name"):
        node_pool.check_pool_name(value)


def test_first_boot_creates_the_pool_and_a_later_boot_imports_it_with_the_state(
    loop_disk: Path, pool_names: list[str], tmp_path: Path
):
    pool, other = pool_names
    devices, state = tmp_path / "devices", tmp_path / "state"
    disk = node_pool.check_disk(str(loop_disk))
    assert node_pool.bring_up(disk, pool, devices) == "created"
    node_pool.mount_state(pool, state)
    (state / "zfs.db").write_bytes(b"records")
    assert node_pool.bring_up(disk, pool, devices) == "present"

    # A reboot: the pool is not imported, the disk still holds it.
    result = zpool("export", pool)
    assert result.returncode == 0, result.stderr
    assert not (state / "zfs.db").exists()
    assert node_pool.bring_up(disk, pool, devices) == "imported"
    node_pool.mount_state(pool, state)
    assert (state / "zfs.db").read_bytes() == b"records"

    # Another pool name on a disk that holds this pool: refused, the disk untouched.
    result = zpool("export", pool)
    assert result.returncode == 0, result.stderr
    with pytest.raises(PoolError, match=f"holds pool\\(s\\) {pool}, not {other}"):
        node_pool.bring_up(disk, other, devices)
    assert zpool("list", other).returncode != 0
    assert node_pool.bring_up(disk, pool, devices) == "imported"
