"""How often `mvirt import` asks mvirt-zfs for its job: rarely while the job has long to go,
often near its end, so the command returns right after the job ended."""

from __future__ import annotations

import pytest

from mvirt.cli.storage import IMPORT_POLL_FAST, IMPORT_POLL_SLOW, import_poll_delay
from mvirt.proto import zfs_pb2

MIB = 1 << 20


def job(state: zfs_pb2.ImportJobState, written: int = 0, total: int = 0) -> zfs_pb2.ImportJob:
    return zfs_pb2.ImportJob(state=state, bytes_written=written, total_bytes=total)


def test_a_job_with_long_to_go_is_asked_at_the_slow_rate():
    converting = job(zfs_pb2.IMPORT_JOB_STATE_CONVERTING, 10 * MIB, 1024 * MIB)
    assert import_poll_delay(converting, elapsed=1.0) == IMPORT_POLL_SLOW


def test_a_job_near_its_end_is_asked_at_the_fast_rate():
    nearly = job(zfs_pb2.IMPORT_JOB_STATE_CONVERTING, 1014 * MIB, 1024 * MIB)
    assert import_poll_delay(nearly, elapsed=2.0) == IMPORT_POLL_FAST


def test_a_job_that_wrote_everything_is_publishing_and_asked_at_the_fast_rate():
    publishing = job(zfs_pb2.IMPORT_JOB_STATE_WRITING, 256 * MIB, 256 * MIB)
    assert import_poll_delay(publishing, elapsed=0.5) == IMPORT_POLL_FAST


def test_in_between_the_job_is_asked_at_half_its_predicted_rest():
    halfway = job(zfs_pb2.IMPORT_JOB_STATE_CONVERTING, 128 * MIB, 256 * MIB)
    assert import_poll_delay(halfway, elapsed=0.2) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("state", "delay"),
    [
        (zfs_pb2.IMPORT_JOB_STATE_PENDING, IMPORT_POLL_FAST),
        (zfs_pb2.IMPORT_JOB_STATE_DOWNLOADING, IMPORT_POLL_SLOW),
    ],
)
def test_without_progress_a_pending_job_is_asked_often_a_download_not(state, delay):
    assert import_poll_delay(job(state), elapsed=0.1) == delay
