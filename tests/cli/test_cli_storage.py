"""``mvirt`` storage commands against a real mvirt-zfs on a zfs-fuse pool."""

from __future__ import annotations

import json
import os
import subprocess

from click.testing import CliRunner

from mvirt.cli.exit_codes import ExitCode
from mvirt.cli.main import cli
from tests.vmm.conftest import FAKE_CH, start_vmm  # noqa: F401 (fixture used below)
from tests.zfs.conftest import (  # noqa: F401 (fixtures used below)
    pool,
    start_zfs_daemon,
    zfs_daemon,
    zfs_service,
)

MIB = 1 << 20


def mvirt(daemon, *args: str):
    # Wide enough that long volume paths print on one line.
    runner = CliRunner(env={"MVIRT_ZFS_SERVER": daemon.endpoint, "COLUMNS": "250"})
    return runner.invoke(cli, list(args), catch_exceptions=False)


def lines(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_import_clone_snapshot_rollback_promote_through_the_cli(
    zfs_daemon,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as file:
        file.truncate(4 * MIB)
        file.seek(MIB)
        file.write(os.urandom(4096))
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(tmp_path / "d.qcow2")],
        check=True,
    )
    monkeypatch.chdir(tmp_path)
    imported = mvirt(zfs_daemon, "import", "debian12", "d.qcow2")  # relative: made absolute
    assert imported.exit_code == 0, imported.output
    assert "template debian12 imported (4.0M)" in imported.output
    templates = lines(mvirt(zfs_daemon, "template", "list", "-o", "json"))
    assert [(t["name"], t["size_bytes"]) for t in templates] == [("debian12", str(4 * MIB))]

    cloned = lines(
        mvirt(zfs_daemon, "template", "clone", "debian12", "web-root", "--size", "8M", "-o", "json")
    )
    path = cloned[0]["path"]
    assert cloned[0]["volsize_bytes"] == str(8 * MIB)
    with open(path, "rb") as volume, open(raw, "rb") as source:
        assert volume.read(4 * MIB) == source.read()

    assert mvirt(zfs_daemon, "snapshot", "create", "web-root", "before-update").exit_code == 0
    assert mvirt(zfs_daemon, "snapshot", "create", "web-root", "later").exit_code == 0
    rolled = mvirt(zfs_daemon, "snapshot", "rollback", "web-root", "before-update")
    assert rolled.exit_code == 0, rolled.output
    assert "destroyed newer snapshots: later" in rolled.output
    promoted = mvirt(zfs_daemon, "snapshot", "promote", "web-root", "before-update", "golden")
    assert promoted.exit_code == 0 and "golden" in promoted.output

    table = mvirt(zfs_daemon, "volume", "list").output
    assert "web-root" in table and "8.0M" in table and path in table
    assert mvirt(zfs_daemon, "volume", "resize", "web-root", "--size", "16M").exit_code == 0
    shrink = mvirt(zfs_daemon, "volume", "resize", "web-root", "--size", "1M")
    assert shrink.exit_code == 1
    assert "FAILED_PRECONDITION" in shrink.output and "Traceback" not in shrink.output

    stats = lines(mvirt(zfs_daemon, "pool", "-o", "json"))[0]
    assert stats["provisioned_bytes"] == str(16 * MIB)
    assert "COMPRESSION" in mvirt(zfs_daemon, "pool").output
    jobs = lines(mvirt(zfs_daemon, "imports", "list", "--all", "-o", "json"))
    assert [j["state"] for j in jobs] == ["IMPORT_JOB_STATE_COMPLETED"]


def test_cli_errors_are_one_line_with_the_reason(zfs_daemon):  # noqa: F811
    bad = mvirt(zfs_daemon, "volume", "create", "a/b", "--size", "1G")
    assert bad.exit_code == 1
    assert "INVALID_ARGUMENT" in bad.output and "name 'a/b'" in bad.output
    assert "Traceback" not in bad.output
    size = mvirt(zfs_daemon, "volume", "create", "x", "--size", "lots")
    assert size.exit_code == 2 and "is not a size" in size.output
    failed = mvirt(zfs_daemon, "import", "t", "/nonexistent/disk.raw")
    assert failed.exit_code == 1 and "outside the directories" in failed.output
    down = CliRunner().invoke(cli, ["pool", "--zfs-server", "127.0.0.1:1"])
    assert down.exit_code == ExitCode.UNAVAILABLE and "is mvirt-zfs running?" in down.output


def test_create_vm_with_a_volume_name_as_disk(zfs_daemon, start_vmm, tmp_path, monkeypatch):  # noqa: F811
    vmm = start_vmm("--hypervisor", "cloud-hypervisor", "--ch-binary", str(FAKE_CH))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    volume = lines(mvirt(zfs_daemon, "volume", "create", "root", "--size", "16M", "-o", "json"))
    runner = CliRunner(
        env={"MVIRT_ZFS_SERVER": zfs_daemon.endpoint, "MVIRT_SERVER": vmm.daemon.endpoint}
    )
    created = runner.invoke(
        cli, ["create", "web", "--kernel", "vmlinuz", "--disk", "root", "-o", "json"]
    )
    assert created.exit_code == 0, created.output
    disks = json.loads(created.output)["config"]["disks"]
    assert [d["path"] for d in disks] == [volume[0]["path"]]
    unknown = runner.invoke(cli, ["create", "db", "--kernel", "vmlinuz", "--disk", "nosuch"])
    assert unknown.exit_code == 2 and "neither a file nor a volume" in unknown.output
