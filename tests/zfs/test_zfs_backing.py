"""Volume backing: detection per pool and the zvol layout.

Kernel ZFS cannot run here, so the zvol side is checked against ``fake_zfs_kernel.py`` (a
recording stand-in for its ``zfs`` tool); the file side runs on a real zfs-fuse pool."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from mvirt.daemon.errors import UnavailableError
from mvirt.zfs.backing import FileBacking, ZvolBacking, detect_backing
from mvirt.zfs.driver import ZfsDriver

FAKE_ZFS = str(Path(__file__).with_name("fake_zfs_kernel.py"))


def recorded(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_pool_that_makes_zvols_gets_zvol_backing(tmp_path, monkeypatch):
    log = tmp_path / "zfs.log"
    monkeypatch.setenv("FAKE_ZFS_LOG", str(log))
    driver = ZfsDriver("tank", tmp_path / "mnt", zfs=FAKE_ZFS)
    backing = asyncio.run(detect_backing(driver))
    assert isinstance(backing, ZvolBacking)
    create, destroy = recorded(log)
    assert create[:4] == ["create", "-s", "-V", "1048576"]
    assert create[4].startswith("tank/.tmp/zvol-probe-")
    assert destroy == ["destroy", create[4]]  # the probe does not stay


def test_zvol_layout_path_options_and_growth(tmp_path, monkeypatch):
    log = tmp_path / "zfs.log"
    monkeypatch.setenv("FAKE_ZFS_LOG", str(log))
    driver = ZfsDriver("tank", tmp_path / "mnt", zfs=FAKE_ZFS)
    backing = ZvolBacking(driver, device_dir=tmp_path / "zvol")
    dataset = driver.dataset("volumes", "0f0e")
    assert backing.path(dataset) == tmp_path / "zvol/tank/volumes/0f0e"
    assert backing.create_options(1 << 30, 16384) == [
        "-s",
        "-V",
        str(1 << 30),
        "-o",
        "volblocksize=16384",
    ]
    asyncio.run(backing.grow(dataset, 2 << 30))
    assert recorded(log) == [["set", f"volsize={2 << 30}", "tank/volumes/0f0e"]]

    # The path is usable once udev made the link: materialize waits for it.
    def udev() -> None:
        link = backing.path(dataset)
        link.parent.mkdir(parents=True)
        link.touch()

    async def create_then_wait() -> None:
        timer = threading.Timer(0.2, udev)
        timer.start()
        await backing.materialize(dataset, 1 << 30)
        timer.join()

    asyncio.run(create_then_wait())
    assert backing.path(dataset).exists()


def test_zfs_fuse_pool_gets_file_backing(pool, tmp_path):
    driver = ZfsDriver(pool, tmp_path / "mnt")

    async def detect() -> object:
        await driver.ensure_layout()
        return await detect_backing(driver)

    backing = asyncio.run(detect())
    assert isinstance(backing, FileBacking)
    assert asyncio.run(driver.children(".tmp")) == []  # the failed probe left nothing
    dataset = driver.dataset("volumes", "abc")
    assert backing.path(dataset) == tmp_path / "mnt/volumes/abc/disk.raw"


def test_zfs_service_down_is_unavailable_with_the_fix(tmp_path):
    driver = ZfsDriver("tank", tmp_path, zfs=str(Path(__file__).with_name("fake_zfs_down.py")))
    with pytest.raises(UnavailableError) as info:
        asyncio.run(driver.usage())
    assert "ZFS is not reachable" in str(info.value) and "start zfs-fuse" in str(info.value)


def test_properties_of_a_dataset_deleted_meanwhile_are_just_missing(pool, tmp_path):
    # Listing takes no lock, so a volume may go between reading the store and asking zfs.
    driver = ZfsDriver(pool, tmp_path / "mnt")

    async def scenario() -> dict[str, dict[str, str]]:
        await driver.ensure_layout()
        await driver.create(driver.dataset("volumes", "here"))
        return await driver.get(
            [driver.dataset("volumes", "here"), driver.dataset("volumes", "gone")], ["used"]
        )

    props = asyncio.run(scenario())
    assert list(props) == [f"{pool}/volumes/here"]
    assert int(props[f"{pool}/volumes/here"]["used"]) > 0
