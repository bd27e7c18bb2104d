"""mvirt-zfs on a real zfs-fuse pool: volumes, snapshots, rollback, clones, promote, deletes,
restart. Data checks read and write the volume's path as a VM would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from mvirt.proto import log_pb2, log_pb2_grpc, zfs_pb2
from tests.zfs.conftest import ZfsDaemon, zfs

MIB = 1 << 20
KNOWN = os.urandom(64 * 1024)
OTHER = os.urandom(64 * 1024)
OFFSET = 5 * MIB


def write_at(path: str, offset: int, data: bytes) -> None:
    """Writes ``data`` at ``offset`` and syncs, as a guest's flush would."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_at(path: str, offset: int, length: int) -> bytes:
    """Reads ``length`` bytes at ``offset``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def make_template(stub, name: str, source: str = "src") -> zfs_pb2.Template:
    """A template holding KNOWN at OFFSET, made by snapshot + promote of a fresh volume."""
    volume = stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name=source, size_bytes=32 * MIB))
    write_at(volume.path, OFFSET, KNOWN)
    stub.CreateSnapshot(zfs_pb2.CreateSnapshotRequest(volume_name=source, snapshot_name="s"))
    return stub.PromoteSnapshotToTemplate(
        zfs_pb2.PromoteSnapshotRequest(volume_name=source, snapshot_name="s", template_name=name)
    )


def expect_error(call, request, code: grpc.StatusCode, *words: str) -> str:
    """Makes the call, asserts it fails with ``code`` and that the details name ``words``."""
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    assert info.value.code() == code, info.value.details()
    for word in words:
        assert word in info.value.details()
    return info.value.details()


def test_create_volume_gives_a_sparse_usable_path(zfs_daemon: ZfsDaemon):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        volume = stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name="data", size_bytes=64 * MIB))
        assert volume.volsize_bytes == 64 * MIB
        assert volume.volblocksize == 16 * 1024
        assert os.path.getsize(volume.path) == 64 * MIB
        assert os.stat(volume.path).st_blocks * 512 < MIB  # sparse: nothing written yet
        write_at(volume.path, OFFSET, KNOWN)
        assert read_at(volume.path, OFFSET, len(KNOWN)) == KNOWN
        assert stub.GetVolume(zfs_pb2.GetVolumeRequest(name="data")).id == volume.id
        assert zfs_daemon.datasets("volumes") == [f"{zfs_daemon.pool}/volumes/{volume.id}"]
        stats = stub.GetPoolStats(zfs_pb2.GetPoolStatsRequest())
        assert stats.name == zfs_daemon.pool
        assert stats.provisioned_bytes == 64 * MIB
        assert 0 < stats.used_bytes < stats.total_bytes
        assert stats.compression_ratio >= 1.0


def test_bytes_survive_snapshot_overwrite_rollback(zfs_daemon: ZfsDaemon):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        volume = stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name="web", size_bytes=32 * MIB))
        write_at(volume.path, OFFSET, KNOWN)
        stub.CreateSnapshot(
            zfs_pb2.CreateSnapshotRequest(volume_name="web", snapshot_name="before")
        )
        write_at(volume.path, OFFSET, OTHER)
        stub.CreateSnapshot(zfs_pb2.CreateSnapshotRequest(volume_name="web", snapshot_name="after"))
        stub.ResizeVolume(zfs_pb2.ResizeVolumeRequest(name="web", new_size_bytes=48 * MIB))
        assert read_at(volume.path, OFFSET, len(OTHER)) == OTHER

        rolled = stub.RollbackSnapshot(
            zfs_pb2.RollbackSnapshotRequest(volume_name="web", snapshot_name="before")
        )
        assert read_at(volume.path, OFFSET, len(KNOWN)) == KNOWN
        assert [s.name for s in rolled.snapshots] == ["before"]  # "after" was newer
        assert rolled.volsize_bytes == 32 * MIB
        assert os.path.getsize(volume.path) == 32 * MIB
        listed = stub.ListSnapshots(zfs_pb2.ListSnapshotsRequest(volume_name="web")).snapshots
        assert [s.full_name for s in listed] == [
            f"{zfs_daemon.pool}/volumes/{volume.id}@{listed[0].id}"
        ]


def test_clones_are_independent_of_their_template_source_and_each_other(zfs_daemon: ZfsDaemon):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        template = make_template(stub, "golden")
        assert template.source_volume == "src"
        assert template.size_bytes == 32 * MIB
        source = stub.GetVolume(zfs_pb2.GetVolumeRequest(name="src"))
        write_at(source.path, OFFSET, OTHER)  # later writes to the source volume

        a = stub.CloneFromTemplate(
            zfs_pb2.CloneFromTemplateRequest(template_name="golden", new_volume_name="a")
        )
        b = stub.CloneFromTemplate(
            zfs_pb2.CloneFromTemplateRequest(
                template_name="golden", new_volume_name="b", size_bytes=64 * MIB
            )
        )
        assert b.volsize_bytes == 64 * MIB and os.path.getsize(b.path) == 64 * MIB
        assert read_at(a.path, OFFSET, len(KNOWN)) == KNOWN
        write_at(a.path, OFFSET, OTHER)
        assert read_at(b.path, OFFSET, len(KNOWN)) == KNOWN
        templates = stub.ListTemplates(zfs_pb2.ListTemplatesRequest()).templates
        assert [(t.name, t.clone_count) for t in templates] == [("golden", 2)]


def test_promoted_template_still_clones_after_its_source_volume_is_deleted(
    zfs_daemon: ZfsDaemon,
):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        make_template(stub, "golden")
        stub.DeleteSnapshot(zfs_pb2.DeleteSnapshotRequest(volume_name="src", snapshot_name="s"))
        stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name="src"))
        clone = stub.CloneFromTemplate(
            zfs_pb2.CloneFromTemplateRequest(template_name="golden", new_volume_name="c")
        )
        assert read_at(clone.path, OFFSET, len(KNOWN)) == KNOWN


def test_deleting_a_template_with_clones_keeps_the_clones(zfs_daemon: ZfsDaemon):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        make_template(stub, "golden")
        names = ("c1", "c2")
        clones = [
            stub.CloneFromTemplate(
                zfs_pb2.CloneFromTemplateRequest(template_name="golden", new_volume_name=n)
            )
            for n in names
        ]
        assert stub.DeleteTemplate(zfs_pb2.DeleteTemplateRequest(name="golden")).deleted
        assert not stub.ListTemplates(zfs_pb2.ListTemplatesRequest()).templates
        for clone in clones:
            assert read_at(clone.path, OFFSET, len(KNOWN)) == KNOWN
        # The clone that took over the template's snapshot can go; the other keeps its data.
        stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name="c1"))
        assert read_at(clones[1].path, OFFSET, len(KNOWN)) == KNOWN
        stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name="c2"))
        assert zfs_daemon.datasets("templates") == []


def test_resize_grows_and_refuses_to_shrink(zfs_daemon: ZfsDaemon):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        volume = stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name="d", size_bytes=16 * MIB))
        write_at(volume.path, MIB, KNOWN)
        grown = stub.ResizeVolume(zfs_pb2.ResizeVolumeRequest(name="d", new_size_bytes=32 * MIB))
        assert grown.volsize_bytes == 32 * MIB and os.path.getsize(volume.path) == 32 * MIB
        assert read_at(volume.path, MIB, len(KNOWN)) == KNOWN
        expect_error(
            stub.ResizeVolume,
            zfs_pb2.ResizeVolumeRequest(name="d", new_size_bytes=16 * MIB),
            grpc.StatusCode.FAILED_PRECONDITION,
            "new_size_bytes",
            "only grow",
        )
        assert os.path.getsize(volume.path) == 32 * MIB


def test_delete_refused_while_snapshots_exist_or_a_process_uses_the_volume(
    zfs_daemon: ZfsDaemon,
):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        volume = stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name="vm", size_bytes=16 * MIB))
        stub.CreateSnapshot(zfs_pb2.CreateSnapshotRequest(volume_name="vm", snapshot_name="s1"))
        expect_error(
            stub.DeleteVolume,
            zfs_pb2.DeleteVolumeRequest(name="vm"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "snapshots (s1)",
        )
        stub.DeleteSnapshot(zfs_pb2.DeleteSnapshotRequest(volume_name="vm", snapshot_name="s1"))
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; f = open(sys.argv[1], 'rb'); print('open', flush=True); "
                "sys.stdin.read()",
                volume.path,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "open\n"
            expect_error(
                stub.DeleteVolume,
                zfs_pb2.DeleteVolumeRequest(name="vm"),
                grpc.StatusCode.FAILED_PRECONDITION,
                f"in use by process {holder.pid}",
            )
        finally:
            holder.communicate("")
        assert stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name="vm")).deleted
        assert zfs_daemon.datasets("volumes") == []
        assert not Path(volume.path).exists()


BAD_NAMES = ["", "a/b", "a@b", "a b", "tab\there", "ctl\x01", "-dash", "x" * 65, "ünï"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_malformed_names_are_invalid_argument_naming_the_field(zfs_daemon: ZfsDaemon, name):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        expect_error(
            stub.CreateVolume,
            zfs_pb2.CreateVolumeRequest(name=name, size_bytes=16 * MIB),
            grpc.StatusCode.INVALID_ARGUMENT,
            "name",
        )
        stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name="ok", size_bytes=16 * MIB))
        expect_error(
            stub.CreateSnapshot,
            zfs_pb2.CreateSnapshotRequest(volume_name="ok", snapshot_name=name),
            grpc.StatusCode.INVALID_ARGUMENT,
            "snapshot_name",
        )
        assert [v.name for v in stub.ListVolumes(zfs_pb2.ListVolumesRequest()).volumes] == ["ok"]
        assert len(zfs_daemon.datasets("volumes")) == 1


@pytest.mark.parametrize(
    ("size", "blocksize", "field", "words"),
    [
        (0, None, "size_bytes", "greater than 0"),
        (1 << 60, None, "size_bytes", "limit"),
        (16 * MIB + 512, None, "size_bytes", "multiple of the volblocksize 16384"),
        (16 * MIB, 3000, "volblocksize", "power of two"),
        (16 * MIB, 1 << 20, "volblocksize", "power of two"),
    ],
)
def test_malformed_sizes_are_invalid_argument(zfs_daemon: ZfsDaemon, size, blocksize, field, words):
    request = zfs_pb2.CreateVolumeRequest(name="v", size_bytes=size)
    if blocksize is not None:
        request.volblocksize = blocksize
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        expect_error(stub.CreateVolume, request, grpc.StatusCode.INVALID_ARGUMENT, field, words)
        assert zfs_daemon.datasets("volumes") == []


def test_unknown_and_duplicate_names_get_precise_codes(zfs_daemon: ZfsDaemon):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        expect_error(
            stub.GetVolume, zfs_pb2.GetVolumeRequest(name="nope"), grpc.StatusCode.NOT_FOUND, "nope"
        )
        expect_error(
            stub.CloneFromTemplate,
            zfs_pb2.CloneFromTemplateRequest(template_name="none", new_volume_name="x"),
            grpc.StatusCode.NOT_FOUND,
            "template_name",
        )
        stub.CreateVolume(zfs_pb2.CreateVolumeRequest(name="v", size_bytes=16 * MIB))
        expect_error(
            stub.CreateVolume,
            zfs_pb2.CreateVolumeRequest(name="v", size_bytes=16 * MIB),
            grpc.StatusCode.ALREADY_EXISTS,
            "'v'",
        )
        make_template(stub, "t")
        expect_error(
            stub.CloneFromTemplate,
            zfs_pb2.CloneFromTemplateRequest(template_name="t", new_volume_name="v"),
            grpc.StatusCode.ALREADY_EXISTS,
            "new_volume_name",
        )
        expect_error(
            stub.CloneFromTemplate,
            zfs_pb2.CloneFromTemplateRequest(
                template_name="t", new_volume_name="small", size_bytes=16 * MIB
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "size_bytes",
        )
        # Nothing was left behind by the refused requests: v, src and no clone.
        assert len([d for d in zfs_daemon.datasets("volumes") if "@" not in d]) == 2


def test_restart_keeps_volumes_snapshots_and_templates(start_zfs_daemon):
    daemon = start_zfs_daemon()
    with daemon.channel() as channel:
        stub = daemon.stub(channel)
        make_template(stub, "golden")
        clone = stub.CloneFromTemplate(
            zfs_pb2.CloneFromTemplateRequest(template_name="golden", new_volume_name="c")
        )
        before = (
            stub.ListVolumes(zfs_pb2.ListVolumesRequest()),
            stub.ListTemplates(zfs_pb2.ListTemplatesRequest()),
        )
    assert daemon.terminate(60) == 0
    again = start_zfs_daemon()
    with again.channel() as channel:
        stub = again.stub(channel)
        after = (
            stub.ListVolumes(zfs_pb2.ListVolumesRequest()),
            stub.ListTemplates(zfs_pb2.ListTemplatesRequest()),
        )
        assert [
            (v.id, v.name, v.path, [s.name for s in v.snapshots]) for v in after[0].volumes
        ] == [(v.id, v.name, v.path, [s.name for s in v.snapshots]) for v in before[0].volumes]
        assert after[1] == before[1]
        assert read_at(clone.path, OFFSET, len(KNOWN)) == KNOWN


def test_every_mutation_is_audited_with_its_related_ids(start_zfs_daemon, start_log_daemon):
    log = start_log_daemon()
    daemon = start_zfs_daemon(log_endpoint=log.endpoint)
    with daemon.channel() as channel:
        stub = daemon.stub(channel)
        template = make_template(stub, "golden")
        source = stub.GetVolume(zfs_pb2.GetVolumeRequest(name="src"))
        snapshot = source.snapshots[0]
        clone = stub.CloneFromTemplate(
            zfs_pb2.CloneFromTemplateRequest(template_name="golden", new_volume_name="c")
        )
        stub.ResizeVolume(zfs_pb2.ResizeVolumeRequest(name="c", new_size_bytes=64 * MIB))
        stub.DeleteVolume(zfs_pb2.DeleteVolumeRequest(name="c"))
    expected = {
        source.id: ["volume src created", "snapshot s of volume src created", "promoted"],
        snapshot.id: ["snapshot s of volume src created", "promoted to template golden"],
        template.id: ["promoted to template golden", "volume c cloned from template golden"],
        clone.id: ["volume c cloned", "volume c resized", "volume c deleted"],
    }
    with log.channel() as channel:
        query = log_pb2_grpc.LogServiceStub(channel).Query
        for object_id, messages in expected.items():
            deadline = time.monotonic() + 30
            while True:
                entries = list(query(log_pb2.QueryRequest(object_id=object_id, limit=100)))
                found = [m for m in messages if any(m in e.message for e in entries)]
                if found == messages:
                    break
                assert time.monotonic() < deadline, (object_id, [e.message for e in entries])
                time.sleep(0.1)
            assert all(e.component == "zfs" for e in entries)


def test_a_restart_removes_datasets_a_crash_left_without_a_record(start_zfs_daemon):
    daemon = start_zfs_daemon()
    with daemon.channel() as channel:
        kept = daemon.stub(channel).CreateVolume(
            zfs_pb2.CreateVolumeRequest(name="kept", size_bytes=16 * MIB)
        )
    daemon.kill()
    # As if the daemon died between creating these datasets and storing their rows.
    for orphan in (f"{daemon.pool}/volumes/orphan-v", f"{daemon.pool}/templates/orphan-t"):
        result = zfs("create", orphan)
        assert result.returncode == 0, result.stderr
    again = start_zfs_daemon()
    assert again.datasets("volumes") == [f"{again.pool}/volumes/{kept.id}"]
    assert again.datasets("templates") == []
    with again.channel() as channel:
        volumes = again.stub(channel).ListVolumes(zfs_pb2.ListVolumesRequest()).volumes
        assert [v.name for v in volumes] == ["kept"]
