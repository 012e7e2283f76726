"""The job lock is shared with the spawned training worker: it outlives whichever of the two lets go first."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from server.jobs.lock import JobLock, held_elsewhere


def _hold(lock, started, stop) -> None:
    assert lock.fd >= 0
    started.set()
    stop.wait(30)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_spawned_worker_keeps_the_job_lock_after_the_server_lets_go(tmp_path, method):
    ctx = mp.get_context(method)
    lock = JobLock.acquire(tmp_path)
    assert lock is not None and held_elsewhere(tmp_path)
    started, stop = ctx.Event(), ctx.Event()
    worker = ctx.Process(target=_hold, args=(lock.for_worker(), started, stop), daemon=True)
    worker.start()
    try:
        assert started.wait(30)
        lock.release()  # what a server killed by SIGKILL does
        assert held_elsewhere(tmp_path), "the orphan worker should still hold the job's lock"
        assert JobLock.acquire(tmp_path) is None
    finally:
        stop.set()
        worker.join(30)
    deadline = time.monotonic() + 5
    while held_elsewhere(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not held_elsewhere(tmp_path), "the lock must be free once the worker has exited"


def test_a_released_lock_cannot_be_passed_to_a_worker(tmp_path):
    lock = JobLock.acquire(tmp_path)
    lock.release()
    lock.release()  # idempotent
    with pytest.raises(ValueError, match="already released"):
        lock.for_worker()
