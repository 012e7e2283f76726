"""flock-based locks: clean-up skips a save in progress, and a lock dies with the process holding it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from rnn_engine import filelock, modelfile
from rnn_engine.modelfile import cleanup_partial, save_model_dir


def test_try_lock_is_exclusive_until_unlocked(tmp_path):
    path = tmp_path / "lock"
    first = filelock.try_lock(path, create=True)
    assert first is not None
    assert filelock.try_lock(path) is None  # a second open file description, even in this process
    filelock.unlock(first)
    second = filelock.try_lock(path)
    assert second is not None
    filelock.unlock(second)


def test_try_lock_of_a_missing_path_is_none(tmp_path):
    assert filelock.try_lock(tmp_path / "gone") is None
    assert filelock.lock_fresh(tmp_path / "gone") is None


def test_a_lock_is_released_when_its_process_dies(tmp_path):
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert filelock.try_lock(path) is None
    finally:
        holder.kill()
        holder.wait(10)
    fd = filelock.try_lock(path)
    assert fd is not None
    filelock.unlock(fd)


def test_cleanup_partial_skips_a_locked_temp_dir_and_removes_an_unlocked_one(tmp_path):
    live, stale = tmp_path / ".m.tmp-aaaa", tmp_path / ".m.tmp-bbbb"
    live.mkdir()
    stale.mkdir()
    fd = filelock.lock_fresh(live)
    try:
        assert cleanup_partial(tmp_path) == [stale.name]
        assert live.is_dir() and not stale.exists()
    finally:
        filelock.unlock(fd)
    assert cleanup_partial(tmp_path) == [live.name]


def test_a_save_whose_temp_dir_was_taken_by_cleanup_starts_again_with_a_new_one(tmp_path, monkeypatch):
    calls = []
    real = filelock.lock_fresh

    def first_lost(path):
        calls.append(path.name)
        return None if len(calls) == 1 else real(path)  # as if another process's clean-up won the race

    monkeypatch.setattr(modelfile.filelock, "lock_fresh", first_lost)
    save_model_dir(tmp_path / "m", {"w": np.ones(3)}, {"task": "x"})
    assert len(calls) == 2 and calls[0] != calls[1]
    assert (tmp_path / "m" / modelfile.MANIFEST).is_file()
