"""The PostgreSQL job backend: `PgJobs` (JobBackend) and `PgUploads` (UploadBackend) over server/pg.py.

Jobs are rows of `rnn_jobs` (the JobRecord as jsonb, its state, the dataset bytes, the lease) with their
events in `rnn_job_events` and their last checkpoint in `rnn_job_checkpoints`. A replica only queues, cancels
and reads jobs; workers (server/jobs/pgworker.py: `rnn-worker`, or the replica's own `--max-training-jobs`)
claim them with `SELECT ... FOR UPDATE SKIP LOCKED` and hold a lease they renew. A RUNNING job whose lease
expired is recorded INTERRUPTED by whoever notices first (any replica's query, any idle worker) and can be
resumed by any worker from its last checkpoint. Events are numbered in SQL (`record.event_count`) and
NOTIFY `rnn_events` wakes the watchers on every replica; CancelJob NOTIFYs `rnn_cancel`; a queued or resumed
job NOTIFYs `rnn_queue`. A unique index allows one QUEUED/RUNNING job per model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import grpc
import psycopg
from psycopg.types.json import Jsonb

from rnn.v1 import training_service_pb2 as tpb
from rnn_engine.errors import AlreadyExists, FailedPrecondition, NotFound

from ..errors import ServiceError, exhausted, invalid
from ..pg import Database, Listener
from . import record as job_record
from .uploads import DATASET_ID, UploadStore

_FIELDS = {f.name for f in fields(job_record.JobRecord)}
LEASE_LOST = (
    "the worker running the job stopped renewing its lease (it died, or lost the database); "
    "resume it with Train(resume_job_id)"
)


def to_record(data: dict) -> job_record.JobRecord:
    return job_record.JobRecord(**{k: v for k, v in data.items() if k in _FIELDS})


def state_event(record: job_record.JobRecord) -> dict[str, Any]:
    return {"kind": "state", "state": record.state, "message": record.message, "step": record.step,
            "total_steps": record.total_steps}


def append_event(cur, record: job_record.JobRecord, event: dict[str, Any], owner: str | None = None,
                 extra_sql: str = "", extra: tuple = ()) -> dict | None:
    """Replace the job's record, append `event` numbered after the last one, NOTIFY its watchers.

    With `owner`, only while that worker holds the lease (None when it does not: the lease was lost).
    `extra_sql` (", column = %s ...") updates more columns in the same statement. Returns the event.
    """
    data = {k: v for k, v in asdict(record).items() if k != "event_count"}
    guard = " AND lease_owner = %s AND state = 'RUNNING'" if owner is not None else ""
    cur.execute(
        "UPDATE rnn_jobs SET record = %s::jsonb || jsonb_build_object('event_count', "
        f"(record->>'event_count')::int + 1), state = %s{extra_sql} WHERE job_id = %s{guard} "
        "RETURNING (record->>'event_count')::int",
        (Jsonb(data), record.state, *extra, record.job_id, *((owner,) if owner is not None else ())),
    )
    row = cur.fetchone()
    if row is None:
        return None
    record.event_count = row[0]
    event = {**event, "job_id": record.job_id, "sequence": row[0] - 1, "time": time.time()}
    cur.execute(
        "INSERT INTO rnn_job_events (job_id, sequence, event) VALUES (%s, %s, %s)",
        (record.job_id, row[0] - 1, Jsonb(event)),
    )
    cur.execute("SELECT pg_notify('rnn_events', %s)", (record.job_id,))
    return event


def expire_leases(db: Database) -> list[str]:
    """Record INTERRUPTED every RUNNING job whose lease has expired; returns their ids."""
    done = []
    with db.transaction() as cur:
        rows = cur.execute(
            "SELECT record FROM rnn_jobs WHERE state = 'RUNNING' AND lease_expires < now() "
            "FOR UPDATE SKIP LOCKED"
        ).fetchall()
        for (data,) in rows:
            record = to_record(data)
            record.state, record.message, record.finished = job_record.INTERRUPTED, LEASE_LOST, time.time()
            append_event(cur, record, state_event(record),
                         extra_sql=", lease_owner = NULL, lease_expires = NULL")
            done.append(record.job_id)
    return done


class PgJobs:
    """JobBackend over the database; `worker` (a PgWorker or None) is the replica's own training slots."""

    def __init__(self, db: Database, listener: Listener, staging: Path, *, max_queued: int = 32,
                 worker=None, on_change: Callable[[dict[str, int]], None] | None = None) -> None:
        self.db, self.worker, self.on_change = db, worker, on_change
        self.staging = Path(staging)
        self.staging.mkdir(parents=True, exist_ok=True)
        self.max_queued = max_queued
        self._closing = False
        self._lock = threading.Lock()
        self._waiters: dict[str, tuple[threading.Condition, int]] = {}  # job id -> (condition, watchers)
        self._expired_at = 0.0
        listener.subscribe("rnn_events", self._wake)
        listener.on_reset(self._wake_all)
        self._changed()

    # ----------------------------------------------------------------------------------- notifications
    def _wake(self, job_id: str) -> None:
        entry = self._waiters.get(job_id)
        if entry is not None:
            cond = entry[0]
            with cond:
                cond.notify_all()

    def _wake_all(self) -> None:
        for job_id in list(self._waiters):
            self._wake(job_id)

    def _expire(self, every: float = 0.5) -> None:
        now = time.monotonic()
        if now - self._expired_at >= every:
            self._expired_at = now
            expire_leases(self.db)

    def _changed(self) -> None:
        if self.on_change is None:
            return
        counts = {s: 0 for s in job_record.STATES}
        try:
            with self.db.connect() as conn:
                for state, n in conn.execute("SELECT state, count(*) FROM rnn_jobs GROUP BY state"):
                    counts[state] = n
        except ServiceError:  # the change itself is committed; the gauge catches up at the next one
            return
        self.on_change(counts)

    # ------------------------------------------------------------------------------------------ queries
    def get(self, job_id: str) -> job_record.JobRecord:
        self._expire()
        with self.db.connect() as conn:
            row = conn.execute("SELECT record FROM rnn_jobs WHERE job_id = %s", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return to_record(row[0])

    def list(self, state: str | None = None, model: str | None = None) -> list[job_record.JobRecord]:
        self._expire()
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT record FROM rnn_jobs WHERE (%(s)s::text IS NULL OR state = %(s)s) "
                "AND (%(m)s::text IS NULL OR model = %(m)s) ORDER BY created DESC, job_id DESC",
                {"s": state or None, "m": model or None},
            ).fetchall()
        return [to_record(r[0]) for r in rows]

    def model_busy(self, name: str) -> bool:
        self._expire()
        with self.db.connect() as conn:
            return conn.execute(
                "SELECT 1 FROM rnn_jobs WHERE model = %s AND state IN ('QUEUED', 'RUNNING')", (name,)
            ).fetchone() is not None

    def has_checkpoint(self, job_id: str) -> bool:
        with self.db.connect() as conn:
            return conn.execute(
                "SELECT 1 FROM rnn_job_checkpoints WHERE job_id = %s AND file = 'latest/manifest.json'",
                (job_id,),
            ).fetchone() is not None

    # ------------------------------------------------------------------------------------------ control
    def submit(self, *, model: str, task: str, model_config: dict, train_config: dict, data: bytes,
               data_suffix: str, dataset_options: dict, overwrite: bool,
               model_exists: bool) -> job_record.JobRecord:
        import secrets

        if self._closing:
            raise FailedPrecondition("the server is shutting down; no new training jobs")
        if model_exists and not overwrite:
            raise AlreadyExists(f"model {model!r} already exists (set overwrite to replace it)")
        record = job_record.JobRecord(
            job_id="job-" + secrets.token_hex(6), model=model, task=task, model_config=model_config,
            train_config=train_config, overwrite=overwrite,
            dataset={"file": "data" + data_suffix, "options": dataset_options},
        )
        try:
            with self.db.transaction() as cur:
                queued = cur.execute("SELECT count(*) FROM rnn_jobs WHERE state = 'QUEUED'").fetchone()[0]
                if queued >= max(1, self.max_queued):
                    raise exhausted("max_queued_jobs", f"{queued} training jobs are already waiting")
                cur.execute(
                    "INSERT INTO rnn_jobs (job_id, model, state, record, created, data) "
                    "VALUES (%s, %s, 'QUEUED', %s, %s, %s)",
                    (record.job_id, model, Jsonb(asdict(record)), record.created, data),
                )
                append_event(cur, record, state_event(record))
                cur.execute("SELECT pg_notify('rnn_queue', %s)", (record.job_id,))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"model {model!r} is being trained by another job") from None
        self._changed()
        return record

    def resume(self, job_id: str) -> job_record.JobRecord:
        """Queue a FAILED/CANCELLED/INTERRUPTED job again; a worker resumes it from its last checkpoint."""
        self._expire(0)
        if self._closing:
            raise FailedPrecondition("the server is shutting down; no new training jobs")
        try:
            with self.db.transaction() as cur:
                row = cur.execute(
                    "SELECT record, data IS NOT NULL FROM rnn_jobs WHERE job_id = %s FOR UPDATE", (job_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"job {job_id!r} not found")
                record = to_record(row[0])
                if record.state not in job_record.RESUMABLE or not row[1]:
                    raise FailedPrecondition(
                        f"job {job_id!r} is {record.state}; "
                        f"only {'/'.join(job_record.RESUMABLE)} jobs can be resumed"
                    )
                resume = cur.execute(
                    "SELECT 1 FROM rnn_job_checkpoints WHERE job_id = %s AND file = 'latest/manifest.json'",
                    (job_id,),
                ).fetchone() is not None
                record.state, record.finished = job_record.QUEUED, None
                record.message = ("resuming from the last checkpoint" if resume
                                  else "restarting (no checkpoint was written)")
                append_event(cur, record, state_event(record),
                             extra_sql=", resume = %s, cancel_requested = false", extra=(resume,))
                cur.execute("SELECT pg_notify('rnn_queue', %s)", (job_id,))
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"model {record.model!r} is being trained by another job") from None
        self._changed()
        return record

    def cancel(self, job_id: str) -> job_record.JobRecord:
        """QUEUED: CANCELLED at once. RUNNING: ask its worker (anywhere) to stop; it checkpoints and ends
        CANCELLED within a training step. A finished job is returned unchanged."""
        with self.db.transaction() as cur:
            row = cur.execute(
                "SELECT record FROM rnn_jobs WHERE job_id = %s FOR UPDATE", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            record = to_record(row[0])
            if record.state == job_record.QUEUED:
                record.state, record.message, record.finished = (
                    job_record.CANCELLED, "cancelled before it started", time.time())
                append_event(cur, record, state_event(record))
            elif record.state == job_record.RUNNING:
                cur.execute("UPDATE rnn_jobs SET cancel_requested = true WHERE job_id = %s", (job_id,))
                cur.execute("SELECT pg_notify('rnn_cancel', %s)", (job_id,))
        self._changed()
        return record

    # ------------------------------------------------------------------------------------------ watching
    def watch(self, job_id: str, from_sequence: int = 0, active: Callable[[], bool] = lambda: True,
              poll: float = 0.25) -> Iterator[dict[str, Any]]:
        """Yield the job's events from `from_sequence`, live (woken by NOTIFY), until it ends."""
        n = max(0, int(from_sequence))
        with self._lock:
            cond, count = self._waiters.get(job_id, (threading.Condition(), 0))
            self._waiters[job_id] = (cond, count + 1)
        try:
            while True:
                with cond:
                    terminal = self.get(job_id).terminal  # before the events: a final record's are all in
                    with self.db.connect() as conn:
                        batch = [r[0] for r in conn.execute(
                            "SELECT event FROM rnn_job_events WHERE job_id = %s AND sequence >= %s "
                            "ORDER BY sequence", (job_id, n))]
                    if not batch and not terminal and active():
                        deadline = time.monotonic() + 1.0  # notifications wake it; lost ones cost <= 1 s
                        while time.monotonic() < deadline and active():
                            if cond.wait(poll):
                                break
                yield from batch
                n += len(batch)
                if (terminal and not batch) or not active():
                    return
        finally:
            with self._lock:
                cond, count = self._waiters[job_id]
                if count <= 1:
                    del self._waiters[job_id]
                else:
                    self._waiters[job_id] = (cond, count - 1)

    # ------------------------------------------------------------------------------------------ shutdown
    def shutdown(self, timeout: float = 10.0) -> None:
        self._closing = True
        if self.worker is not None:
            self.worker.shutdown(timeout)


class PgUploads:
    """UploadBackend: a stream is received into a local staging UploadStore (size limits, hashing), then
    stored in `rnn_uploads` and deleted locally; `max_disk_bytes` bounds all uploads in the database."""

    def __init__(self, db: Database, staging: Path, max_bytes: int, max_disk_bytes: int = 0) -> None:
        self.db, self.max_disk_bytes = db, max_disk_bytes
        self.local = UploadStore(Path(staging), max_bytes, 0)

    def receive(self, requests: Iterable[tpb.UploadDatasetRequest],
                is_active: Callable[[], bool] = lambda: True) -> tuple[str, int, str]:
        dataset_id, size, sha = self.local.receive(requests, is_active)
        path, sidecar = self.local.root / dataset_id, self.local.root / f"{dataset_id}.json"
        try:
            data, meta = path.read_bytes(), json.loads(sidecar.read_text())
            with self.db.transaction() as cur:
                if self.max_disk_bytes:
                    used = cur.execute(
                        "SELECT coalesce(sum(size_bytes), 0) FROM rnn_uploads WHERE dataset_id <> %s",
                        (dataset_id,)).fetchone()[0]
                    if used + size > self.max_disk_bytes:
                        raise exhausted("max_upload_disk_bytes",
                                        f"uploads already use {used} of {self.max_disk_bytes} bytes")
                cur.execute(
                    "INSERT INTO rnn_uploads (dataset_id, name, format, size_bytes, sha256, data) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dataset_id) DO NOTHING",
                    (dataset_id, meta["name"], meta["format"], size, sha, data),
                )
        finally:
            path.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        return dataset_id, size, sha

    def read(self, dataset_id: str, field: str = "dataset.dataset_id") -> tuple[bytes, int]:
        if not DATASET_ID.fullmatch(dataset_id):
            raise invalid(field, f"expected an id returned by UploadDataset (ds-...), got {dataset_id!r}")
        with self.db.connect() as conn:
            row = conn.execute(
                "SELECT data, format FROM rnn_uploads WHERE dataset_id = %s", (dataset_id,)).fetchone()
        if row is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"{field}: dataset {dataset_id!r} not found")
        return bytes(row[0]), tpb.DatasetFormat.Value(row[1])
