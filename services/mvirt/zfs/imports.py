"""Import jobs: an image (file or URL; raw or qcow2; maybe xz/zstd/gzip) becomes a template.

A job works in two datasets named by ids the daemon chose: ``<pool>/.tmp/<job id>-work``
(download and decompression) and ``<pool>/templates/<template id>`` (the image, in the pool's
volume backing). A template exists only once its row is stored, which happens after the image
is complete and snapshotted (:meth:`StorageManager.publish_template`), so nothing
half-written ever becomes a template. A failed or cancelled job destroys both datasets; a
restart destroys the datasets of jobs that did not finish. (The image is written in place
rather than renamed from ``.tmp``: zfs-fuse refuses a rename for a while after the
converter closed the file.)

Concurrency: each job is one asyncio task; blocking copies run in a worker thread that stops
at the next chunk when the job is cancelled; converters are child processes killed on cancel.
Progress lives in memory (``self._live``) and is written to the store on state changes. At
startup, jobs a previous run left unfinished end as FAILED with the reason, and everything
under ``.tmp`` is destroyed (nothing else uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from mvirt.daemon.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError
from mvirt.zfs import image_source
from mvirt.zfs.driver import TEMPLATES, TMP
from mvirt.zfs.image_source import ImportFailedError, Source, StoppedError
from mvirt.zfs.manager import AUDIT_LEVEL, StorageManager, TemplateView
from mvirt.zfs.model import ImportJobRecord, JobState, TemplateRecord, now_iso
from mvirt.zfs.phase_times import PhaseTimes
from mvirt.zfs.process import CommandError, run_with_progress
from mvirt.zfs.validation import DEFAULT_BLOCKSIZE, check_size, round_up

log = logging.getLogger("mvirt.zfs.imports")
T = TypeVar("T")
_PERCENT = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")


class ImportRunner:
    """Starts, tracks, cancels and recovers import jobs (see module docstring)."""

    def __init__(
        self, manager: StorageManager, roots: Sequence[Path], qemu_img: str = "qemu-img"
    ) -> None:
        self.manager = manager
        self.store = manager.store
        self.driver = manager.driver
        self.roots = list(roots)
        self.qemu_img = qemu_img
        self._live: dict[str, ImportJobRecord] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stops: dict[str, threading.Event] = {}
        self._publishing: set[str] = set()
        self._times: dict[str, PhaseTimes] = {}
        self._stopping = False

    def _audit(self, message: str, *related: str) -> None:
        self.manager.audit.log(AUDIT_LEVEL, message, related)

    # API.

    async def start(self, name: str, source: str, size: int | None) -> ImportJobRecord:
        """ImportTemplate: checks the request, stores a PENDING job and starts it."""
        checked = image_source.check_source(source, self.roots)
        if size is not None:
            check_size(size, "size_bytes", DEFAULT_BLOCKSIZE)
        async with self.manager.lock:
            self.manager.check_new_template_name(name, "name")
            if any(job.template_name == name for job in self._live.values()):
                raise AlreadyExistsError(f"name: an import of template {name!r} is running")
            job = ImportJobRecord(
                id=str(uuid.uuid4()),
                template_name=name,
                source=source,
                state=JobState.PENDING,
                bytes_written=0,
                total_bytes=0,
                error=None,
                template_id=str(uuid.uuid4()),
                size=size,
                created_at=now_iso(),
                completed_at=None,
            )
            times = PhaseTimes()
            self.store.add_job(job)
            self._live[job.id] = job
            self._times[job.id] = times
            self._stops[job.id] = threading.Event()
            self._tasks[job.id] = asyncio.create_task(self._run(job.id, checked))
        self._audit(f"import of template {name} from {source} started", job.id, job.template_id)
        return job

    def get(self, job_id: str) -> ImportJobRecord:
        """GetImportJob (live progress for running jobs)."""
        job = self._live.get(job_id) or self.store.job(job_id)
        if job is None:
            raise NotFoundError(f"id: no import job {job_id!r}; see `mvirt import list`")
        return job

    def list(self, include_finished: bool) -> list[ImportJobRecord]:
        """ListImportJobs, oldest first."""
        return [self._live.get(j.id, j) for j in self.store.jobs(include_finished)]

    async def cancel(self, job_id: str) -> bool:
        """CancelImportJob: stops the job and waits until its datasets are gone. False when
        the job had already ended."""
        job = self.get(job_id)
        task = self._tasks.get(job_id)
        if job.state.finished or task is None:
            return False
        if job_id in self._publishing:
            raise FailedPreconditionError(
                f"import job {job_id} is publishing its finished template; delete the "
                "template instead"
            )
        self._stops[job_id].set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        return True

    def template_of(self, job: ImportJobRecord) -> TemplateView | None:
        """The template a completed job made (if it still exists)."""
        if job.state != JobState.COMPLETED:
            return None
        record = self.store.template(job.template_id)
        return None if record is None else self.manager.template_view(record)

    # Recovery and shutdown.

    async def recover(self) -> None:
        """Ends jobs a previous run left unfinished as FAILED and removes their leftovers."""
        for job in self.store.jobs(include_finished=False):
            if self.store.template(job.template_id) is None:
                await self._remove_leftover(self.driver.dataset(TEMPLATES, job.template_id))
            self._finish(
                job,
                JobState.FAILED,
                f"interrupted by a restart of mvirt-zfs while {job.state.name}; "
                "start the import again",
            )
        for leftover in await self.driver.children(TMP):
            await self._remove_leftover(leftover)

    async def _remove_leftover(self, dataset: str) -> None:
        # A converter orphaned by a crash may still hold it: a failure is logged and the
        # next start tries again, rather than keeping the daemon from serving.
        log.info("removing leftover dataset", extra={"dataset": dataset})
        try:
            await self.driver.destroy(dataset, recursive=True)
        except CommandError as exc:
            log.error("cannot remove leftover %s: %s", dataset, exc.reason)

    async def close(self) -> None:
        """Stops running jobs (they end FAILED, their datasets removed)."""
        self._stopping = True
        for job_id, task in list(self._tasks.items()):
            self._stops[job_id].set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # The job.

    def _update(self, job_id: str, **changes: object) -> ImportJobRecord:
        job = replace(self._live[job_id], **changes)  # type: ignore[arg-type]
        self._live[job_id] = job
        return job

    def _set_state(self, job_id: str, state: JobState, done: int = 0, total: int = 0) -> None:
        self.store.update_job(
            self._update(job_id, state=state, bytes_written=done, total_bytes=total)
        )

    def _finish(self, job: ImportJobRecord, state: JobState, error: str | None) -> None:
        job = replace(job, state=state, error=error, completed_at=now_iso())
        self.store.update_job(job)
        self._live.pop(job.id, None)
        verb = {JobState.COMPLETED: "completed", JobState.CANCELLED: "cancelled"}.get(
            state, "failed"
        )
        reason = f": {error}" if error else ""
        self._audit(
            f"import of template {job.template_name} {verb}{reason}", job.id, job.template_id
        )
        times = self._times.pop(job.id, None)
        if times is not None:
            times.lap("finish")
            log.info(
                "import job ended",
                extra={
                    "job": job.id,
                    "state": state.name,
                    "total_ms": round(times.total() * 1000, 1),
                    "phases_ms": times.as_ms(),
                },
            )

    def _progress(self, job_id: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            # Called from a worker thread: replacing the record is one atomic assignment.
            if job_id in self._live:
                self._live[job_id] = replace(
                    self._live[job_id], bytes_written=done, total_bytes=total
                )

        return report

    async def _in_thread(
        self, job_id: str, work: Callable[[], T], abort: Callable[[], None] | None = None
    ) -> T:
        task = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._stops[job_id].set()
            if abort is not None:
                abort()
            # The thread must have let go of its files before the datasets can be destroyed.
            with contextlib.suppress(Exception):
                await task
            raise

    async def _run(self, job_id: str, source: Source) -> None:
        job = self._live[job_id]
        times = self._times[job_id]
        times.lap("queued")
        work = self.driver.dataset(TMP, f"{job_id}-work")
        image = self.driver.dataset(TEMPLATES, job.template_id)
        try:
            await self._import(job_id, source, work, image, times)
        except asyncio.CancelledError:
            times.lap("aborted")  # the step that failed or was cancelled
            await self._cleanup(work, image)
            times.lap("cleanup")
            if self._stopping:
                self._finish(self._live[job_id], JobState.FAILED, "mvirt-zfs stopped")
            else:
                self._finish(self._live[job_id], JobState.CANCELLED, "cancelled by request")
        except (ImportFailedError, StoppedError, CommandError, OSError) as exc:
            times.lap("aborted")
            await self._cleanup(work, image)
            times.lap("cleanup")
            reason = exc.reason if isinstance(exc, CommandError) else str(exc)
            self._finish(self._live[job_id], JobState.FAILED, reason or type(exc).__name__)
        except Exception as exc:
            log.exception("import job failed", extra={"job": job_id})
            times.lap("aborted")
            await self._cleanup(work, image)
            times.lap("cleanup")
            self._finish(self._live[job_id], JobState.FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(job_id, None)
            self._stops.pop(job_id, None)
            self._times.pop(job_id, None)
            self._publishing.discard(job_id)

    async def _cleanup(self, *datasets: str) -> None:
        for dataset in datasets:
            try:
                await asyncio.shield(self.driver.destroy(dataset, recursive=True))
            except (CommandError, asyncio.CancelledError) as exc:
                log.error("cannot remove %s: %s", dataset, exc)

    async def _import(
        self, job_id: str, source: Source, work: str, image: str, times: PhaseTimes
    ) -> None:
        stop = self._stops[job_id]
        progress = self._progress(job_id)
        path = source.path
        work_made = False  # a local, uncompressed image needs no work dataset
        if source.url is not None:
            await self.driver.create(work)
            work_made = True
            path = self.driver.mountpoint(work) / "download"
            self._set_state(job_id, JobState.DOWNLOADING)
            download = image_source.Download(source.url, path, progress)
            await self._in_thread(job_id, download.run, download.abort)
            times.lap("download")
        assert path is not None
        kind = await asyncio.to_thread(image_source.compression_of, path)
        if kind is not None:
            if not work_made:
                await self.driver.create(work)
                work_made = True
            compressed, plain = path, self.driver.mountpoint(work) / "decompressed"
            self._set_state(job_id, JobState.CONVERTING)
            if kind == "zstd":
                await image_source.verify_zstd(compressed)
            await self._in_thread(
                job_id,
                lambda: image_source.decompress(compressed, kind, plain, progress, stop),
            )
            if source.url is not None:
                compressed.unlink()
            path = plain
            times.lap("decompress")
        info = await image_source.inspect(path, self.qemu_img)
        times.lap("probe")
        requested = self._live[job_id].size
        if requested is not None and requested < info.virtual_size:
            raise ImportFailedError(
                f"size_bytes {requested} is smaller than the image ({info.virtual_size} bytes)"
            )
        size = round_up(max(info.virtual_size, requested or 0), DEFAULT_BLOCKSIZE)
        backing = self.manager.backing

        async def create_image() -> None:
            await self.driver.create(image, backing.create_options(size, DEFAULT_BLOCKSIZE))
            await backing.materialize(image, size)

        # The qcow2 check reads only metadata and the dataset creation waits on ZFS: side by
        # side, one hides the other. Both run to their end even when the other failed (a
        # `zfs create` cut short could still complete after the job's cleanup); then a
        # failure of either ends the job, which destroys the dataset.
        steps = [create_image()]
        if info.format == "qcow2":
            steps.append(image_source.check_qcow2(path, self.qemu_img))
        for outcome in await asyncio.gather(*steps, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        times.lap("create")
        state = JobState.CONVERTING if info.format == "qcow2" else JobState.WRITING
        self._set_state(job_id, state, 0, info.virtual_size)
        times.lap("status")

        def converted(line: str) -> None:
            match = _PERCENT.search(line)
            if match:
                done = int(float(match[1]) * info.virtual_size / 100)
                self._live[job_id] = replace(self._live[job_id], bytes_written=done)

        await run_with_progress(
            [
                self.qemu_img,
                "convert",
                "-p",
                "-n",
                "--target-is-zero",
                "-f",
                info.format,
                "-O",
                "raw",
                str(path),
                str(backing.path(image)),
            ],
            converted,
        )
        times.lap("convert")
        if work_made:
            await self.driver.destroy(work, recursive=True)
            times.lap("cleanup")
        self._publishing.add(job_id)
        job = self._live[job_id]
        record = TemplateRecord(job.template_id, job.template_name, size, "", now_iso())
        await self.manager.publish_template(image, record)
        times.lap("publish")
        done = replace(job, bytes_written=info.virtual_size, total_bytes=info.virtual_size)
        self._finish(done, JobState.COMPLETED, None)
