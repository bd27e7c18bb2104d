"""Import jobs on a real zfs-fuse pool: images made by qemu-img from known bytes, served by a
local HTTP server or read from a file; cancel, kill -9 and broken sources leave nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from mvirt.proto import zfs_pb2
from tests.zfs.conftest import ZfsDaemon, wait_for, zfs
from tests.zfs.image_server import Route, image_server

MIB = 1 << 20
RAW_SIZE = 8 * MIB
FINISHED = (
    zfs_pb2.IMPORT_JOB_STATE_COMPLETED,
    zfs_pb2.IMPORT_JOB_STATE_FAILED,
    zfs_pb2.IMPORT_JOB_STATE_CANCELLED,
)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """One raw image of known bytes (random blocks among zeros) in several encodings."""
    folder = tmp_path_factory.mktemp("images")
    raw = folder / "disk.raw"
    with open(raw, "wb") as file:
        file.truncate(RAW_SIZE)
        for offset in (0, 3 * MIB + 4096, RAW_SIZE - 65536):
            file.seek(offset)
            file.write(os.urandom(65536))
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(folder / "disk.qcow2"))
    run("zstd", "-q", "-k", str(folder / "disk.qcow2"), "-o", str(folder / "disk.qcow2.zst"))
    run("zstd", "-q", "-k", str(raw), "-o", str(folder / "disk.raw.zst"))
    run("xz", "-k", "-T1", "-0", str(raw))
    run("gzip", "-k", "-1", str(folder / "disk.qcow2"))
    return {p.name: p for p in folder.iterdir()}


def sha256(path: Path | str, length: int) -> str:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read(length)).hexdigest()


def wait_job(stub, job_id: str, timeout: float = 180) -> zfs_pb2.ImportJob:
    """Polls GetImportJob until the job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        job = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job_id))
        if job.state in FINISHED:
            return job
        assert time.monotonic() < deadline, f"import still {job.state} after {timeout}s"
        time.sleep(0.05)


def wait_progress(stub, job_id: str, state: int, timeout: float = 60) -> zfs_pb2.ImportJob:
    """Polls until the job is in ``state`` with some bytes written."""
    deadline = time.monotonic() + timeout
    while True:
        job = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job_id))
        if job.state == state and job.bytes_written > 0:
            return job
        assert job.state not in FINISHED, job
        assert time.monotonic() < deadline, f"no progress in {timeout}s: {job}"
        time.sleep(0.02)


def assert_nothing_left(daemon: ZfsDaemon) -> None:
    """No dataset under .tmp or templates, no file in the tmp mount, no template row."""
    assert daemon.datasets(".tmp") == []
    assert daemon.datasets("templates") == []
    tmp_mount = daemon.data_dir / "mnt" / "tmp"
    assert not tmp_mount.exists() or list(tmp_mount.iterdir()) == []
    with daemon.channel() as channel:
        assert not daemon.stub(channel).ListTemplates(zfs_pb2.ListTemplatesRequest()).templates


def check_template_bytes(stub, template: str, raw: Path) -> None:
    """A clone of ``template`` starts with exactly the bytes of ``raw``."""
    clone = stub.CloneFromTemplate(
        zfs_pb2.CloneFromTemplateRequest(template_name=template, new_volume_name=f"{template}-c")
    )
    assert sha256(clone.path, RAW_SIZE) == sha256(raw, RAW_SIZE)


@pytest.mark.parametrize(
    "name",
    ["disk.raw", "disk.qcow2", "disk.qcow2.zst", "disk.raw.zst", "disk.raw.xz", "disk.qcow2.gz"],
)
def test_http_import_matches_the_source_bytes(zfs_daemon: ZfsDaemon, images, name):
    with image_server() as server, zfs_daemon.channel() as channel:
        server.routes["/img"] = Route(images[name].read_bytes())
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(
            zfs_pb2.ImportTemplateRequest(name="t", source=server.url("/img"))
        )
        assert job.state == zfs_pb2.IMPORT_JOB_STATE_PENDING
        done = wait_job(stub, job.id)
        assert done.state == zfs_pb2.IMPORT_JOB_STATE_COMPLETED, done.error
        assert done.template.name == "t" and done.template.size_bytes == RAW_SIZE
        assert done.bytes_written == done.total_bytes == RAW_SIZE
        assert done.HasField("completed_at") and not done.HasField("error")
        check_template_bytes(stub, "t", images["disk.raw"])
        assert zfs_daemon.datasets(".tmp") == []


def test_local_qcow2_import_grows_to_the_requested_size(zfs_daemon: ZfsDaemon, images, tmp_path):
    local = tmp_path / "local.qcow2"
    local.write_bytes(images["disk.qcow2"].read_bytes())
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(
            zfs_pb2.ImportTemplateRequest(name="big", source=str(local), size_bytes=16 * MIB)
        )
        done = wait_job(stub, job.id)
        assert done.state == zfs_pb2.IMPORT_JOB_STATE_COMPLETED, done.error
        assert done.template.size_bytes == 16 * MIB
        check_template_bytes(stub, "big", images["disk.raw"])
        jobs = stub.ListImportJobs(zfs_pb2.ListImportJobsRequest(include_completed=True)).jobs
        assert [j.id for j in jobs] == [job.id]
        assert not stub.ListImportJobs(zfs_pb2.ListImportJobsRequest()).jobs
        with pytest.raises(grpc.RpcError) as info:
            stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name="big", source=str(local)))
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "template named 'big'" in info.value.details()


def ended_jobs(daemon: ZfsDaemon) -> dict[str, dict]:
    """The daemon's "import job ended" log records by job id."""
    records = {}
    for line in daemon.stderr().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "import job ended":
            records[record["job"]] = record
    return records


def test_a_finished_import_logs_where_its_time_went(zfs_daemon: ZfsDaemon, images, tmp_path):
    local = tmp_path / "local.qcow2"
    local.write_bytes(images["disk.qcow2"].read_bytes())
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name="t", source=str(local)))
        assert wait_job(stub, job.id).state == zfs_pb2.IMPORT_JOB_STATE_COMPLETED
    wait_for(lambda: job.id in ended_jobs(zfs_daemon), 30, "the job's log record")
    record = ended_jobs(zfs_daemon)[job.id]
    assert record["state"] == "COMPLETED"
    phases = record["phases_ms"]
    # A local, uncompressed image is converted straight into the template's dataset: no
    # download, no work dataset to make or to clean up.
    assert list(phases) == ["queued", "probe", "create", "status", "convert", "publish", "finish"]
    assert all(ms >= 0 for ms in phases.values()) and phases["convert"] > 0
    # The phases cover the job from request to end (each is rounded to 0.1 ms).
    assert abs(sum(phases.values()) - record["total_ms"]) <= 0.05 * len(phases) + 0.1


def test_a_truncated_local_qcow2_fails_and_leaves_nothing(zfs_daemon: ZfsDaemon, images, tmp_path):
    body = images["disk.qcow2"].read_bytes()
    cut = tmp_path / "cut.qcow2"
    cut.write_bytes(body[: len(body) // 2])
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name="t", source=str(cut)))
        done = wait_job(stub, job.id)
        assert done.state == zfs_pb2.IMPORT_JOB_STATE_FAILED
        assert "damaged or truncated" in done.error
    assert_nothing_left(zfs_daemon)
    wait_for(lambda: job.id in ended_jobs(zfs_daemon), 30, "the job's log record")
    record = ended_jobs(zfs_daemon)[job.id]
    assert record["state"] == "FAILED"
    # The failing step and the cleanup after it are phases of their own.
    assert list(record["phases_ms"])[-3:] == ["aborted", "cleanup", "finish"]


def test_interrupted_download_resumes_with_range(zfs_daemon: ZfsDaemon, images):
    with image_server() as server, zfs_daemon.channel() as channel:
        body = images["disk.qcow2"].read_bytes()
        route = server.routes["/img"] = Route(body, cut_once_at=len(body) // 2)
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(
            zfs_pb2.ImportTemplateRequest(name="t", source=server.url("/img"))
        )
        done = wait_job(stub, job.id)
        assert done.state == zfs_pb2.IMPORT_JOB_STATE_COMPLETED, done.error
        assert route.range_requests == [f"bytes={len(body) // 2}-"]
        check_template_bytes(stub, "t", images["disk.raw"])


@pytest.mark.parametrize(
    ("route", "words"),
    [
        (Route(b"", ranges=False), "404"),
        ("truncated", "does not resume"),
        ("qcow2-cut", "qcow2"),
        ("xz-cut", "xz stream is damaged or truncated"),
        ("zstd-cut", "zstd stream is damaged or truncated"),
    ],
)
def test_broken_sources_fail_the_job_with_the_reason(zfs_daemon: ZfsDaemon, images, route, words):
    with image_server() as server, zfs_daemon.channel() as channel:
        qcow2 = images["disk.qcow2"].read_bytes()
        xz = images["disk.raw.xz"].read_bytes()
        if route == "truncated":
            server.routes["/img"] = Route(qcow2, ranges=False, truncate_at=len(qcow2) // 3)
        elif route == "qcow2-cut":
            server.routes["/img"] = Route(qcow2[: len(qcow2) // 2])
        elif route == "xz-cut":
            server.routes["/img"] = Route(xz[: len(xz) // 2])
        elif route == "zstd-cut":
            zst = images["disk.raw.zst"].read_bytes()
            server.routes["/img"] = Route(zst[: len(zst) // 2])
        path = "/img" if isinstance(route, str) else "/missing"
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name="t", source=server.url(path)))
        done = wait_job(stub, job.id)
        assert done.state == zfs_pb2.IMPORT_JOB_STATE_FAILED
        assert words in done.error
        assert_nothing_left(zfs_daemon)


def test_qcow2_with_a_backing_file_is_refused(zfs_daemon: ZfsDaemon, images, tmp_path):
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(images["disk.raw"]),
            str(overlay),
        ],
        check=True,
        capture_output=True,
    )
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name="t", source=str(overlay)))
        done = wait_job(stub, job.id)
        assert done.state == zfs_pb2.IMPORT_JOB_STATE_FAILED
        assert "backing" in done.error
        assert_nothing_left(zfs_daemon)


@pytest.mark.parametrize(
    ("name", "source", "field"),
    [
        ("t", "relative/disk.raw", "relative path"),
        ("t", "/etc/hostname", "outside the directories"),
        ("t", "ftp://127.0.0.1/x", "only http and https"),
        ("t", "", "source is required"),
        ("a/b", "http://127.0.0.1:1/x", "name"),
    ],
)
def test_bad_import_requests_are_invalid_argument(zfs_daemon: ZfsDaemon, name, source, field):
    with zfs_daemon.channel() as channel:
        stub = zfs_daemon.stub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ImportTemplate(zfs_pb2.ImportTemplateRequest(name=name, source=source))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in info.value.details()
        assert not stub.ListImportJobs(zfs_pb2.ListImportJobsRequest(include_completed=True)).jobs


def test_cancel_mid_download_leaves_nothing_and_ends_the_job(zfs_daemon: ZfsDaemon, images):
    with image_server() as server, zfs_daemon.channel() as channel:
        body = images["disk.qcow2"].read_bytes()
        server.routes["/img"] = Route(body, hold_after=len(body) // 2)
        stub = zfs_daemon.stub(channel)
        job = stub.ImportTemplate(
            zfs_pb2.ImportTemplateRequest(name="t", source=server.url("/img"))
        )
        running = wait_progress(stub, job.id, zfs_pb2.IMPORT_JOB_STATE_DOWNLOADING)
        assert running.total_bytes == len(body)
        assert stub.CancelImportJob(zfs_pb2.CancelImportJobRequest(id=job.id)).cancelled
        ended = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job.id))
        assert ended.state == zfs_pb2.IMPORT_JOB_STATE_CANCELLED
        assert not stub.CancelImportJob(zfs_pb2.CancelImportJobRequest(id=job.id)).cancelled
        assert_nothing_left(zfs_daemon)
        # The name is free again.
        server.routes["/img"].release.set()
        again = stub.ImportTemplate(
            zfs_pb2.ImportTemplateRequest(name="t", source=server.url("/img"))
        )
        assert wait_job(stub, again.id).state == zfs_pb2.IMPORT_JOB_STATE_COMPLETED


@pytest.mark.parametrize(
    ("stop", "reason"),
    [("kill -9", "interrupted by a restart"), ("SIGTERM", "mvirt-zfs stopped")],
)
def test_a_daemon_stopped_mid_import_ends_the_job_failed(start_zfs_daemon, images, stop, reason):
    daemon = start_zfs_daemon()
    with image_server() as server:
        body = images["disk.qcow2"].read_bytes()
        server.routes["/img"] = Route(body, hold_after=len(body) // 2)
        with daemon.channel() as channel:
            stub = daemon.stub(channel)
            job = stub.ImportTemplate(
                zfs_pb2.ImportTemplateRequest(name="t", source=server.url("/img"))
            )
            wait_progress(stub, job.id, zfs_pb2.IMPORT_JOB_STATE_DOWNLOADING)
        assert daemon.datasets(".tmp") != []
        if stop == "kill -9":
            daemon.kill()
        else:
            assert daemon.terminate(60) == 0
    again = start_zfs_daemon()
    with again.channel() as channel:
        stub = again.stub(channel)
        ended = stub.GetImportJob(zfs_pb2.GetImportJobRequest(id=job.id))
        assert ended.state == zfs_pb2.IMPORT_JOB_STATE_FAILED
        assert reason in ended.error
        assert not stub.ListImportJobs(zfs_pb2.ListImportJobsRequest()).jobs
    assert_nothing_left(again)
    assert zfs("get", "-H", "-o", "value", "type", f"{again.pool}/.tmp").returncode == 0
