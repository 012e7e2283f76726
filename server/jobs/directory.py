"""Training jobs: worker processes (spawn), progress read back by a thread, watchers, persistence, restart.

A job runs `server.jobs.worker.run_job` in its own process, at most `max_running` at once (others wait
QUEUED). Its events flow through a multiprocessing Queue to a reader thread here, which numbers them, appends
them to the job's events.jsonl, updates the record and wakes every watcher. A worker that dies without a last
word leaves the job FAILED with its exit code. `resume` restarts a FAILED/CANCELLED/INTERRUPTED job (same id)
from its last checkpoint.

Several servers may share one model directory (scale-out). A server owns the jobs it queued or resumed and
holds their lock (server/jobs/lock.py) until they end; only owned jobs live in memory. Every other job is read
from its files (state as recorded; WatchJob polls its events.jsonl). A job recorded QUEUED/RUNNING whose
lock nobody holds lost its server: whoever reads it first (a server at start-up, or any query) takes the
lock and records it INTERRUPTED. Resuming takes the lock first, so a job runs on one server at a time;
CancelJob for a job another server runs leaves a `cancel` file that the owner checks at each event.

Over 350 lines on purpose: one `JobManager` whose owned jobs (queue, worker processes, reader threads,
watchers) and other servers' jobs (read from files, recorded INTERRUPTED when their lock is free) share one
lock, one `_Live` record and one set of state transitions (`_set_state`, `_end`); the record itself, the
lock, the worker process and the training code are already their own modules (record.py, lock.py,
process.py, worker.py).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rnn_engine import modelfile
from rnn_engine.errors import AlreadyExists, FailedPrecondition, NotFound

from ..errors import exhausted
from . import record as job_record
from .lock import JobLock
from .process import WorkerProcess
from .worker import run_job

log = logging.getLogger("rnn.server.jobs")
MAX_QUEUED = 32


class _Live:
    """In-memory side of a job: its events, the condition watchers wait on, the worker and its stop flag."""

    def __init__(self, files: job_record.JobFiles, record: job_record.JobRecord, events: list[dict]) -> None:
        self.files, self.record, self.events = files, record, events
        self.cond = threading.Condition()
        self.worker: WorkerProcess | None = None
        self.resume = False
        self.lock: JobLock | None = None  # held from queueing to the end (this server owns the job)


class JobManager:
    """Runs jobs under `model_dir/.jobs` and reads those of other servers sharing it; thread-safe."""

    def __init__(
        self,
        model_dir: Path,
        *,
        max_running: int = 1,
        max_queued: int = MAX_QUEUED,
        start_method: str = "spawn",
        blas_threads: int = 1,
        on_change: Callable[[dict[str, int]], None] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.root = self.model_dir / ".jobs"
        if self.root.is_symlink():
            raise ValueError(f"{self.root} is a symlink: the job directory must be a real directory")
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging = self.root  # temporary files (the dataset pre-check)
        self.max_running, self.max_queued = max_running, max_queued
        self.ctx = mp.get_context(start_method)
        self.blas_threads = blas_threads  # each worker limits its own BLAS pool (server/threads.py)
        self.on_change = on_change
        self._lock = threading.RLock()
        self._jobs: dict[str, _Live] = {}  # the jobs this server owns (queued or running here)
        self._queue: list[str] = []
        self._closing = False
        self._load()

    # ------------------------------------------------------------------------------------------ records
    def _load(self) -> None:
        """At start-up: record as INTERRUPTED the jobs whose server stopped (reading them does that)."""
        self.list()
        self._changed()

    def _disk_record(self, job_id: str) -> job_record.JobRecord:
        """A job this server does not own, as recorded; QUEUED/RUNNING with nobody holding it: INTERRUPTED."""
        try:
            files = job_record.JobFiles(self.root, job_id)
            files.check_no_symlinks()
            record = files.read_record()
            files.check_no_symlinks(record)
        except FileNotFoundError:
            raise NotFound(f"job {job_id!r} not found", resource_type="job", resource_name=job_id) from None
        except (OSError, ValueError, TypeError) as exc:
            raise NotFound(
                f"job {job_id!r}: unreadable record ({exc})", resource_type="job", resource_name=job_id
            ) from None
        if record.state not in job_record.ACTIVE:
            return record
        lock = JobLock.acquire(files.dir)
        if lock is None:  # another server (or its worker) runs it
            return record
        try:
            live = _Live(files, files.read_record(), files.read_events())
            if live.record.state in job_record.ACTIVE:
                self._set_state(
                    live,
                    job_record.INTERRUPTED,
                    "the server stopped while the job was "
                    f"{live.record.state.lower()}; resume it with Train(resume_job_id)",
                    notify=False,
                )
            return live.record
        finally:
            lock.release()

    def _changed(self) -> None:
        if self.on_change is not None:
            counts = {s: 0 for s in job_record.STATES}
            for record in self.list():
                counts[record.state] += 1
            self.on_change(counts)

    def _emit(self, live: _Live, event: dict[str, Any]) -> None:
        with live.cond:
            event = {**event, "job_id": live.record.job_id, "sequence": len(live.events), "time": time.time()}
            live.events.append(event)
            live.record.event_count = len(live.events)
            live.files.append_event(event)
            if event.get("kind") != "step" or event["sequence"] % 25 == 0:
                live.files.write_record(live.record)
            live.cond.notify_all()

    def _set_state(self, live: _Live, state: str, message: str = "", notify: bool = True) -> None:
        live.record.state = state
        if message:
            live.record.message = message
        now = time.time()
        if state == job_record.RUNNING:
            live.record.started = now
        elif state not in job_record.ACTIVE:
            live.record.finished = now
        event = {
            "kind": "state",
            "state": state,
            "message": message,
            "step": live.record.step,
            "total_steps": live.record.total_steps,
        }
        # the final event: the last step's epoch and loss, the final metrics
        if state not in job_record.ACTIVE:
            event.update(_final_fields(live.events), loss=live.record.last_loss)
            event["metrics"] = dict(live.record.metrics)
        self._emit(live, event)
        if notify:
            self._changed()

    def _end(self, live: _Live, state: str, message: str = "") -> None:
        """Record the job's final state and let go of it (another server may resume it now)."""
        self._set_state(live, state, message, notify=False)
        if live.lock is not None:
            with self._lock:
                self._jobs.pop(live.record.job_id, None)
            live.lock.release()
        self._changed()

    # ------------------------------------------------------------------------------------------ queries
    def get(self, job_id: str) -> job_record.JobRecord:
        live = self._jobs.get(job_id)
        return live.record if live is not None else self._disk_record(job_id)

    def list(self, state: str | None = None, model: str | None = None) -> list[job_record.JobRecord]:
        """Records of every job in the directory (this server's and others'), newest first, filtered."""
        with self._lock:
            owned = {job_id: live.record for job_id, live in self._jobs.items()}
        records = list(owned.values())
        for path in sorted(self.root.glob("job-*/job.json")):
            job_id = path.parent.name
            if job_id in owned or not job_record.JOB_ID.fullmatch(job_id):
                continue
            try:
                records.append(self._disk_record(job_id))
            except NotFound as exc:
                log.warning("skipping job %s: %s", job_id, exc)
        records = [r for r in records if (not state or r.state == state) and (not model or r.model == model)]
        return sorted(records, key=lambda r: (r.created, r.job_id), reverse=True)

    def has_checkpoint(self, job_id: str) -> bool:
        self.get(job_id)
        return job_record.JobFiles(self.root, job_id).has_checkpoint()

    def model_busy(self, name: str) -> bool:
        """A job queued or running on any server sharing the directory trains model `name`."""
        if any(lv.record.model == name for lv in list(self._jobs.values())):
            return True
        return any(not r.terminal for r in self.list(model=name))

    # ------------------------------------------------------------------------------------------ control
    def submit(
        self,
        *,
        model: str,
        task: str,
        model_config: dict,
        train_config: dict,
        data: bytes,
        data_suffix: str,
        dataset_options: dict,
        overwrite: bool,
        model_exists: bool,
    ) -> job_record.JobRecord:
        """Create and queue a job; the dataset bytes are written into the job's directory."""
        with self._lock:
            if self._closing:
                raise FailedPrecondition("the server is shutting down; no new training jobs")
            if self.model_busy(model):
                raise AlreadyExists(f"model {model!r} is being trained by another job")
            if model_exists and not overwrite:
                raise AlreadyExists(f"model {model!r} already exists (set overwrite to replace it)")
            if len(self._queue) >= self.max_queued and self._running() >= self.max_running:
                raise exhausted("max_queued_jobs", "too many training jobs are already waiting",
                                self.max_queued)
            job_id = "job-" + secrets.token_hex(6)
            files = job_record.JobFiles(self.root, job_id)
            files.dir.mkdir(parents=True)
            lock = JobLock.acquire(files.dir)
            if lock is None:
                raise RuntimeError(f"the lock of the new job {job_id} is held by another process")
            data_file = "data" + data_suffix
            try:
                (files.dir / data_file).write_bytes(data)
            except BaseException:
                lock.release()
                raise
            record = job_record.JobRecord(
                job_id=job_id,
                model=model,
                task=task,
                model_config=model_config,
                train_config=train_config,
                overwrite=overwrite,
                dataset={"file": data_file, "options": dataset_options},
            )
            live = _Live(files, record, [])
            live.lock = lock
            self._jobs[job_id] = live
            self._set_state(live, job_record.QUEUED, "")
            self._queue.append(job_id)
            self._start_queued()
            return record

    def resume(self, job_id: str) -> job_record.JobRecord:
        """Restart a FAILED/CANCELLED/INTERRUPTED job from its last checkpoint (same job id)."""
        with self._lock:
            owned = self._jobs.get(job_id)
            if owned is not None:
                raise FailedPrecondition(
                    f"job {job_id!r} is {owned.record.state}; only "
                    f"{'/'.join(job_record.RESUMABLE)} jobs can be resumed"
                )
            live = self._take(job_id)
            live.files.cancel_request.unlink(missing_ok=True)  # an old request must not stop the new run
            if live.files.checkpoints.is_dir():  # the job is not running: repair a checkpoint save cut short
                modelfile.cleanup_partial(live.files.checkpoints)
            live.resume = live.files.has_checkpoint()
            live.record.finished = None
            self._set_state(
                live,
                job_record.QUEUED,
                "resuming from the last checkpoint"
                if live.resume
                else "restarting (no checkpoint was written)",
            )
            self._queue.append(job_id)
            self._start_queued()
            return live.record

    def _take(self, job_id: str) -> _Live:
        """Lock a resumable job and own it; FailedPrecondition when another server runs it."""
        record = self._disk_record(job_id)  # NotFound; records a dead server's job INTERRUPTED
        files = job_record.JobFiles(self.root, job_id)
        lock = JobLock.acquire(files.dir)
        if lock is None:
            raise FailedPrecondition(
                f"job {job_id!r} is running on another server ({record.state} with its lock held); "
                "watch it with WatchJob or cancel it with CancelJob"
            )
        try:
            live = _Live(files, files.read_record(), files.read_events())
            live.record.event_count = len(live.events)
            if live.record.state not in job_record.RESUMABLE:
                raise FailedPrecondition(
                    f"job {job_id!r} is {live.record.state}; only "
                    f"{'/'.join(job_record.RESUMABLE)} jobs can be resumed"
                )
            if self.model_busy(live.record.model):
                raise AlreadyExists(f"model {live.record.model!r} is being trained by another job")
        except BaseException:
            lock.release()
            raise
        live.lock = lock
        self._jobs[job_id] = live
        return live

    def cancel(self, job_id: str) -> job_record.JobRecord:
        """Ask a job to stop (it checkpoints and ends CANCELLED); a finished job is returned unchanged.

        For a job another server runs, leave a cancel request file that its server acts on at the job's next
        event; the record is returned as recorded (still RUNNING) and ends CANCELLED shortly after.
        """
        with self._lock:
            live = self._jobs.get(job_id)
            if live is None:
                record = self._disk_record(job_id)
                if not record.terminal:
                    request = job_record.JobFiles(self.root, job_id).cancel_request
                    os.close(os.open(request, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644))
                return record
            if live.record.state == job_record.QUEUED:
                self._queue.remove(job_id)
                self._end(live, job_record.CANCELLED, "cancelled before it started")
            elif live.record.state == job_record.RUNNING and live.worker is not None:
                live.worker.stop.set()
            return live.record

    def _running(self) -> int:
        return sum(1 for lv in self._jobs.values() if lv.record.state == job_record.RUNNING)

    def _start_queued(self) -> None:
        while self._queue and self._running() < self.max_running and not self._closing:
            live = self._jobs[self._queue.pop(0)]
            if live.files.cancel_request.exists():
                self._end(
                    live, job_record.CANCELLED, "cancelled by CancelJob (on another server) before it started"
                )
            else:
                self._start(live)

    def _start(self, live: _Live) -> None:
        rec = live.record
        job = {
            "model_config": rec.model_config,
            "train_config": rec.train_config,
            "task": rec.task,
            "data_path": str(live.files.data_path(rec)),
            "dataset_options": rec.dataset.get("options", {}),
            "checkpoint_dir": str(live.files.checkpoints),
            "resume": live.resume,
            "model_path": str(self.model_dir / rec.model),
            "job_id": rec.job_id,
            "blas_threads": self.blas_threads,
            "lock": live.lock.for_worker(),  # the worker holds the job's lock too, until it exits
        }
        live.worker = WorkerProcess(
            self.ctx,
            run_job,
            job,
            f"rnn-train-{rec.job_id}",
            on_event=lambda event: self._progress(live, event),
            on_end=lambda outcome: self._ended(live, outcome),
        )
        rec.attempts += 1
        self._set_state(live, job_record.RUNNING)
        live.worker.start()

    # ------------------------------------------------------------------------------------------ progress
    def _ended(self, live: _Live, outcome: tuple) -> None:
        with self._lock:
            self._finish(live, outcome)
            self._start_queued()

    def _progress(self, live: _Live, event: dict[str, Any]) -> None:
        rec = live.record
        rec.apply_progress(event)
        if live.worker is not None and live.files.cancel_request.exists():  # CancelJob on another server
            live.worker.stop.set()
        self._emit(live, {"kind": event.get("kind", "progress"), **event, "state": rec.state})

    def _finish(self, live: _Live, outcome: tuple) -> None:
        kind = outcome[0]
        if kind == "done":
            live.record.metrics.update(outcome[1].get("metrics", {}))
            live.files.release_working_files(live.record)  # the model is saved; data and checkpoints go
            self._end(live, job_record.SUCCEEDED, "")
        elif kind == "cancelled":
            if self._closing:
                self._end(
                    live, job_record.INTERRUPTED, "the server shut down; resume with Train(resume_job_id)"
                )
            else:
                self._end(live, job_record.CANCELLED, "cancelled by CancelJob")
        elif kind == "error":
            self._end(live, job_record.FAILED, f"{outcome[1]}: {outcome[2]}")
        else:
            self._end(live, job_record.INTERRUPTED if self._closing else job_record.FAILED, outcome[1])

    # ------------------------------------------------------------------------------------------ watching
    def watch(
        self,
        job_id: str,
        from_sequence: int = 0,
        active: Callable[[], bool] = lambda: True,
        poll: float = 0.25,
    ) -> Iterator[dict[str, Any]]:
        """Yield the job's events from `from_sequence`, live, until the job ends or `active()` is False."""
        live = self._jobs.get(job_id)
        if live is None:
            yield from self._watch_files(job_id, from_sequence, active, poll)
            return
        n = max(0, int(from_sequence))
        while True:
            with live.cond:
                while n >= len(live.events) and not live.record.terminal and active():
                    live.cond.wait(poll)
                batch = live.events[n:]
                done = live.record.terminal
            yield from batch
            n += len(batch)
            if (done and n >= len(live.events)) or not active():
                return

    def _watch_files(
        self, job_id: str, from_sequence: int, active: Callable[[], bool], poll: float
    ) -> Iterator[dict[str, Any]]:
        """Follow a job this server does not own through its events.jsonl, polling every `poll` seconds."""
        files = job_record.JobFiles(self.root, job_id)
        record, offset, n = self._disk_record(job_id), 0, 0
        while True:
            record = self.get(job_id)  # before the events: a final record's last event is already written
            batch, offset = files.read_events_from(offset)
            for event in batch:
                if n >= from_sequence:
                    yield event
                n += 1
            if record.terminal or not active():
                return
            time.sleep(poll)

    # ------------------------------------------------------------------------------------------ shutdown
    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; running workers checkpoint and stop within `timeout` or are killed."""
        with self._lock:
            self._closing = True
            for job_id in list(self._queue):
                self._queue.remove(job_id)
                self._end(
                    self._jobs[job_id], job_record.INTERRUPTED, "the server shut down before the job started"
                )
            running = [lv for lv in self._jobs.values() if lv.worker is not None and lv.worker.is_alive()]
            for live in running:
                live.worker.stop.set()
        deadline = time.monotonic() + timeout
        for live in running:
            live.worker.join_or_kill(deadline - time.monotonic())
        for live in running:  # let reader threads record the outcome
            with live.cond:
                while not live.record.terminal and time.monotonic() < deadline + 3:
                    live.cond.wait(0.1)


def _final_fields(events: list[dict[str, Any]]) -> dict[str, Any]:
    """epoch, elapsed and best_step of the job's last training event (for its final state event)."""
    for event in reversed(events):
        if event.get("kind") in ("step", "eval", "done", "progress"):
            keys = ("epoch", "elapsed", "best_step")
            return {k: event[k] for k in keys if event.get(k) is not None}
    return {}
