"""Training workers on the PostgreSQL store: `PgWorker` (slots that claim and run jobs) and `rnn-worker`.

A slot claims the oldest QUEUED job with `SELECT ... FOR UPDATE SKIP LOCKED` (two workers never get the same
one), records it RUNNING with a lease of `lease_seconds` and runs it in a training process
(server/jobs/worker.py run_job, as the directory backend does) in a local scratch directory: the dataset and
the last checkpoint come from the database, and every checkpoint the trainer writes goes back to it. A
heartbeat thread renews the lease every lease/4 s (only a lease that has not expired); when a renewal is
refused (expired, or taken over) or none succeeded for 3/4 of the lease (the database unreachable, the
network hung) the slot kills its process and writes nothing more, so a job never runs twice at once. The
finished model and the job's SUCCEEDED record are written in one transaction, only while the lease is held.
CancelJob anywhere NOTIFYs `rnn_cancel`: the process stops at its next training step.

`rnn-worker` / `python -m server.jobs.worker`: a process of `--slots` slots against `--store` / RNN_STORE.

Over 350 lines (~380) on purpose: claiming, the heartbeat, losing the lease and every write guarded by it
(`_write`, `_save_checkpoint`, `_finish`) are one lease protocol and are read together; the `rnn-worker`
command (`build_parser`, `main`, 55 lines) stays beside the class it runs so the console script
`server.jobs.pgworker:main` keeps its path.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ServiceError
from ..pg import DB_ERRORS, Database, Listener, StoreError
from ..pgmodels import insert_model, read_dir, write_dir
from . import record as job_record
from .postgres import append_event, expire_leases, state_event, to_record
from .process import WorkerProcess
from .worker import _plain, run_job

log = logging.getLogger("rnn.worker")
DB_TROUBLE = (ServiceError, *DB_ERRORS)


class _Run:
    """One claimed job on this worker: its record, process, lease state."""

    def __init__(self, record: job_record.JobRecord, scratch: Path) -> None:
        self.record, self.scratch = record, scratch
        self.process: WorkerProcess | None = None
        self.renewed = time.monotonic()
        self.lost = False  # the lease is gone: write nothing more
        self.ended = threading.Event()


class PgWorker:
    """`slots` threads that claim and run jobs from the database until `shutdown`."""

    def __init__(self, db: Database, listener: Listener, *, slots: int = 1, lease_seconds: float = 15.0,
                 work_dir: Path | None = None, start_method: str = "spawn", blas_threads: int = 1,
                 name: str | None = None) -> None:
        self.db, self.slots, self.lease = db, slots, float(lease_seconds)
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.work_dir = Path(work_dir or tempfile.gettempdir()) / f".rnn-worker-{secrets.token_hex(4)}"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.ctx = mp.get_context(start_method)
        self.blas_threads = blas_threads
        self._closing = threading.Event()
        self._wake = threading.Condition()
        self._pokes = 0
        self._runs: dict[str, _Run] = {}
        self._threads: list[threading.Thread] = []
        listener.subscribe("rnn_queue", lambda _payload: self._poke())
        listener.subscribe("rnn_cancel", self._cancel_notified)
        listener.on_reset(self._poke)

    # ------------------------------------------------------------------------------------------ control
    def start(self) -> PgWorker:
        for i in range(self.slots):
            thread = threading.Thread(target=self._loop, daemon=True, name=f"rnn-worker-slot-{i}")
            thread.start()
            self._threads.append(thread)
        return self

    def _poke(self) -> None:
        with self._wake:
            self._pokes += 1
            self._wake.notify_all()

    def _cancel_notified(self, job_id: str) -> None:
        run = self._runs.get(job_id)
        if run is not None and run.process is not None:
            run.process.stop.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop claiming; running jobs checkpoint, are recorded INTERRUPTED and can be resumed anywhere."""
        self._closing.set()
        self._poke()
        for run in list(self._runs.values()):
            if run.process is not None:
                run.process.stop.set()
        deadline = time.monotonic() + timeout
        for run in list(self._runs.values()):
            if run.process is not None:
                run.process.join_or_kill(deadline - time.monotonic())
        for thread in self._threads:
            thread.join(max(0.1, deadline + 5 - time.monotonic()))
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ claiming
    def _loop(self) -> None:
        while not self._closing.is_set():
            with self._wake:
                pokes = self._pokes
            try:
                claimed = self._claim()
            except DB_TROUBLE as exc:
                log.warning("cannot claim a job", extra={"error": str(exc)})
                self._closing.wait(1.0)
                continue
            if claimed is not None:
                self._run(*claimed)
                continue
            try:
                expire_leases(self.db)
            except DB_TROUBLE:
                pass
            with self._wake:
                if self._pokes == pokes and not self._closing.is_set():
                    self._wake.wait(1.0)  # NOTIFY rnn_queue wakes it; a lost one costs <= 1 s

    def _claim(self) -> tuple[_Run, dict[str, Any]] | None:
        """Take the oldest QUEUED job (SKIP LOCKED) and record it RUNNING under this worker's lease."""
        with self.db.transaction() as cur:
            row = cur.execute(
                "SELECT job_id, record, data, resume FROM rnn_jobs WHERE state = 'QUEUED' "
                "ORDER BY created, job_id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchone()
            if row is None:
                return None
            job_id, data, resume = row[0], bytes(row[2] or b""), row[3]
            record = to_record(row[1])
            checkpoint = {}
            if resume:
                checkpoint = {f: bytes(d) for f, d in cur.execute(
                    "SELECT file, data FROM rnn_job_checkpoints WHERE job_id = %s", (job_id,))}
            record.state, record.started, record.message = job_record.RUNNING, time.time(), ""
            record.attempts += 1
            append_event(
                cur, record, state_event(record),
                extra_sql=", lease_owner = %s, lease_expires = now() + make_interval(secs => %s), "
                "cancel_requested = false",
                extra=(self.id, self.lease),
            )
        scratch = Path(tempfile.mkdtemp(dir=self.work_dir, prefix=f"{job_id}-"))
        (scratch / record.dataset["file"]).write_bytes(data)
        if checkpoint:
            write_dir(scratch / "ckpt", checkpoint)
        run = _Run(record, scratch)
        job = {
            "model_config": record.model_config,
            "train_config": record.train_config,
            "task": record.task,
            "data_path": str(scratch / record.dataset["file"]),
            "dataset_options": record.dataset.get("options", {}),
            "checkpoint_dir": str(scratch / "ckpt"),
            "resume": bool(resume and (scratch / "ckpt" / "latest" / "manifest.json").is_file()),
            "model_path": str(scratch / "model" / record.model),
            "job_id": job_id,
            "blas_threads": self.blas_threads,
        }
        return run, job

    # ------------------------------------------------------------------------------------------ running
    def _run(self, run: _Run, job: dict[str, Any]) -> None:
        rec = run.record
        self._runs[rec.job_id] = run
        try:
            run.process = WorkerProcess(
                self.ctx, run_job, job, f"rnn-train-{rec.job_id}",
                on_event=lambda event: self._progress(run, event),
                on_end=lambda outcome: self._finish(run, outcome),
            )
            run.process.start()
            log.info("job claimed", extra={"job_id": rec.job_id, "worker": self.id})
            threading.Thread(target=self._beat, args=(run,), daemon=True,
                             name=f"rnn-heartbeat-{rec.job_id}").start()
            while not run.ended.wait(self.lease / 8):  # a heartbeat hung on the network cannot delay this
                if not run.lost and time.monotonic() - run.renewed > self.lease * 0.75:
                    self._lose(run, "no lease renewal for 3/4 of the lease")
        finally:
            self._runs.pop(rec.job_id, None)
            shutil.rmtree(run.scratch, ignore_errors=True)

    def _beat(self, run: _Run) -> None:
        while not run.ended.wait(self.lease / 4):
            self._heartbeat(run)

    def _heartbeat(self, run: _Run) -> None:
        try:
            with self.db.connect(timeout=self.lease / 4) as conn:  # never blocked past the give-up time
                row = conn.execute(
                    "UPDATE rnn_jobs SET lease_expires = now() + make_interval(secs => %s) "
                    "WHERE job_id = %s AND lease_owner = %s AND state = 'RUNNING' AND lease_expires > now() "
                    "RETURNING cancel_requested",
                    (self.lease, run.record.job_id, self.id),
                ).fetchone()
        except DB_TROUBLE as exc:  # _run gives the job up at 3/4 of the lease without a renewal
            log.warning("cannot renew a lease", extra={"job_id": run.record.job_id, "error": str(exc)})
            return
        if row is None:
            self._lose(run, "the lease expired or was taken over")
            return
        run.renewed = time.monotonic()
        if row[0] and run.process is not None:  # a missed NOTIFY rnn_cancel
            run.process.stop.set()

    def _lose(self, run: _Run, why: str) -> None:
        """The lease is gone: stop the process now; another worker may run the job from here on."""
        if not run.lost:
            log.warning("job lease lost; stopping it", extra={"job_id": run.record.job_id, "reason": why})
        run.lost = True
        if run.process is not None:
            run.process.stop.set()
            run.process.process.kill()

    def _write(self, run: _Run, event: dict[str, Any], extra_sql: str = "", extra: tuple = (),
               before=None) -> bool:
        """Record the run's record and `event` while holding the lease; False (and lost) when not held."""
        if run.lost:
            return False
        try:
            with self.db.transaction() as cur:
                if before is not None:
                    held = cur.execute(
                        "SELECT 1 FROM rnn_jobs WHERE job_id = %s AND lease_owner = %s AND state = 'RUNNING' "
                        "AND lease_expires > now() FOR UPDATE", (run.record.job_id, self.id)).fetchone()
                    if held is None:
                        self._lose(run, "the lease expired before the result was saved")
                        return False
                    before(cur)
                if append_event(cur, run.record, event, owner=self.id, extra_sql=extra_sql,
                                extra=extra) is None:
                    raise _LeaseLost
            return True
        except _LeaseLost:
            self._lose(run, "the lease was taken over")
            return False

    def _save_checkpoint(self, cur, run: _Run) -> None:
        ckpt = run.scratch / "ckpt"
        files = {}
        for part in ("latest", "best"):  # a resume after an evaluation reads best/ (the best weights) too
            if (ckpt / part).is_dir():
                files.update({f"{part}/{k}": v for k, v in read_dir(ckpt / part).items()})
        if "latest/manifest.json" not in files:
            return
        cur.execute("DELETE FROM rnn_job_checkpoints WHERE job_id = %s", (run.record.job_id,))
        cur.executemany("INSERT INTO rnn_job_checkpoints (job_id, file, data) VALUES (%s, %s, %s)",
                        [(run.record.job_id, f, d) for f, d in files.items()])

    def _progress(self, run: _Run, event: dict[str, Any]) -> None:
        rec = run.record
        rec.apply_progress(event)
        latest = event.get("kind") == "checkpoint" and str(event.get("checkpoint") or "").endswith("latest")
        try:
            self._write(run, {"kind": event.get("kind", "progress"), **event, "state": rec.state},
                        before=(lambda cur: self._save_checkpoint(cur, run)) if latest else None)
        except DB_TROUBLE as exc:  # the heartbeat decides whether the job can go on
            log.warning("cannot record a job event", extra={"job_id": rec.job_id, "error": str(exc)})

    def _finish(self, run: _Run, outcome: tuple) -> None:
        rec, kind = run.record, outcome[0]
        try:
            if run.lost:
                return
            closing = self._closing.is_set()
            rec.finished = time.time()
            if kind == "done":
                rec.metrics.update(_plain(outcome[1].get("metrics", {})))
                files = read_dir(run.scratch / "model" / rec.model)

                def save(cur):
                    insert_model(cur, rec.model, files, overwrite=True)
                    cur.execute("DELETE FROM rnn_job_checkpoints WHERE job_id = %s", (rec.job_id,))

                rec.state, rec.message = job_record.SUCCEEDED, ""
                sql = ", data = NULL, lease_owner = NULL, lease_expires = NULL"
                for attempt in range(5):  # the database may be back in a moment
                    try:
                        self._write(run, state_event(rec), sql, before=save)
                        return
                    except DB_TROUBLE as exc:
                        log.warning("cannot save the model yet",
                                    extra={"job_id": rec.job_id, "error": str(exc)})
                        time.sleep(0.5 * (attempt + 1))
                return
            if kind == "cancelled":
                state = job_record.INTERRUPTED if closing else job_record.CANCELLED
                message = ("the worker shut down; resume with Train(resume_job_id)" if closing
                           else "cancelled by CancelJob")
            elif kind == "error":
                state, message = job_record.FAILED, f"{outcome[1]}: {outcome[2]}"
            else:
                state, message = (job_record.INTERRUPTED if closing else job_record.FAILED), outcome[1]
            rec.state, rec.message = state, message
            self._write(run, state_event(rec), ", lease_owner = NULL, lease_expires = NULL",
                        before=lambda cur: self._save_checkpoint(cur, run))
        except DB_TROUBLE as exc:
            log.warning("cannot record the job's end (its lease will expire: INTERRUPTED)",
                        extra={"job_id": rec.job_id, "error": str(exc)})
        finally:
            run.ended.set()


class _LeaseLost(Exception):
    pass


# ---------------------------------------------------------------------------------------------- rnn-worker
def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="rnn-worker", description="Run training jobs queued in the PostgreSQL store (RNN_STORE).")
    parser.add_argument("--store", default=env.get("RNN_STORE", ""),
                        help="postgresql://... URL of the store (env RNN_STORE)")
    parser.add_argument("--slots", type=int, default=int(env.get("RNN_WORKER_SLOTS", "1")),
                        help="jobs run at once (env RNN_WORKER_SLOTS, default 1)")
    parser.add_argument("--lease-seconds", type=float, default=float(env.get("RNN_JOB_LEASE_SECONDS", "15")),
                        help="a dead worker's job is INTERRUPTED after this (env RNN_JOB_LEASE_SECONDS)")
    parser.add_argument("--work-dir", default=env.get("RNN_WORK_DIR", ""),
                        help="local scratch directory (env RNN_WORK_DIR, default the system temp dir)")
    parser.add_argument("--blas-threads", type=int, default=int(env.get("RNN_BLAS_THREADS", "1")),
                        help="BLAS threads of each training process (env RNN_BLAS_THREADS)")
    parser.add_argument("--shutdown-grace", type=float, default=float(env.get("RNN_SHUTDOWN_GRACE", "10")))
    parser.add_argument("--log-level", default=env.get("RNN_LOG_LEVEL", "INFO"))
    return parser


def main(argv: list[str] | None = None) -> int:
    from .. import logs
    from ..pg import is_postgres

    args = build_parser().parse_args(argv)
    if not is_postgres(args.store):
        print("rnn-worker: --store / RNN_STORE: expected a postgresql:// URL (workers need the shared "
              f"store), got {args.store!r}", file=sys.stderr)
        return 2
    for name, value, low in (("--slots", args.slots, 1), ("--lease-seconds", args.lease_seconds, 1),
                             ("--blas-threads", args.blas_threads, 1)):
        if not value >= low:
            print(f"rnn-worker: {name}: expected a number >= {low}, got {value}", file=sys.stderr)
            return 2
    logs.configure(args.log_level.upper())
    try:
        db = Database(args.store, max_size=args.slots + 2)
    except StoreError as exc:
        print(f"rnn-worker: {exc}", file=sys.stderr)
        return 2
    listener = Listener(args.store).start()
    worker = PgWorker(db, listener, slots=args.slots, lease_seconds=args.lease_seconds,
                      work_dir=Path(args.work_dir) if args.work_dir else None, blas_threads=args.blas_threads)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())
    worker.start()
    log.info("worker ready", extra={"worker": worker.id, "slots": args.slots, "store": db.where})
    print(f"rnn-worker {worker.id} ready ({args.slots} slot(s), store {db.where})", flush=True)
    while not stop.wait(0.5):
        pass
    worker.shutdown(args.shutdown_grace)
    listener.close()
    db.close()
    return 0
