"""The per-job lock `model_dir/.jobs/<job_id>/lock`: held while a job is queued or running, by its runner.

Servers sharing one model directory (scale-out replicas on one volume) use it to tell a live job from one
whose server died: an exclusive `fcntl.flock` (rnn_engine.filelock) taken by the server when it queues the
job and shared with the job's training worker process (the same open file description is passed to the
worker), so it is released only when both have let go. A kill -9 of the server leaves the lock with the
orphan worker until the worker notices (server/jobs/worker.py orphan_check) and exits after its checkpoint;
only then can another server mark the job INTERRUPTED and resume it. A kill of both (a container dying)
releases it at once.
"""

from __future__ import annotations

import os
from multiprocessing import reduction
from pathlib import Path

from rnn_engine import filelock

LOCK_FILE = "lock"


class JobLock:
    """A held job lock; `release()` is idempotent. Pass `for_worker()` in a worker's arguments to share it."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    @classmethod
    def acquire(cls, job_dir: Path) -> JobLock | None:
        """Take the lock of the job in `job_dir` without waiting; None when another process holds it."""
        fd = filelock.try_lock(Path(job_dir) / LOCK_FILE, create=True)
        return None if fd is None else cls(fd)

    def for_worker(self) -> InheritedLock:
        if self.fd is None:
            raise ValueError("lock: expected a held lock, got one already released")
        return InheritedLock(self.fd)

    def release(self) -> None:
        filelock.unlock(self.fd)
        self.fd = None


def held_elsewhere(job_dir: Path) -> bool:
    """True while some process (another server or a worker) holds the job's lock."""
    lock = JobLock.acquire(job_dir)
    if lock is None:
        return True
    lock.release()
    return False


class InheritedLock:
    """A lock descriptor that a spawn/forkserver worker receives as its own copy (fork inherits it anyway).

    Pickled while a process is being spawned, it asks multiprocessing to pass a duplicate of the descriptor to
    the child; the child keeps it open (so keeps the flock) until it exits.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self):
        return _rebuild, (reduction.DupFd(self.fd),)


def _rebuild(dup) -> InheritedLock:
    fd = dup.detach()
    os.set_inheritable(fd, False)
    return InheritedLock(fd)
