"""--blas-threads / RNN_BLAS_THREADS: the server process and each training worker limit their BLAS pool
(threadpoolctl reports the limit inside those processes)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest

from rnn_engine.config import ModelConfig, TrainConfig
from server.config import ConfigError, load_config
from server.jobs.worker import run_job
from tests.crash.proc import ServerProcess

TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 4
CORES = os.cpu_count() or 1


def serving_record(proc: ServerProcess) -> dict:
    return next(json.loads(line) for line in proc.lines if '"serving"' in line)


@pytest.mark.parametrize("argv, env, want", [([], {}, 1), (["--blas-threads", "2"], {}, 2),
                                             ([], {"RNN_BLAS_THREADS": "2"}, 2)])
def test_server_process_limits_its_blas_threads(tmp_path, monkeypatch, argv, env, want):
    if want > CORES:
        pytest.skip(f"needs {want} cores for BLAS to run {want} threads")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proc = ServerProcess(tmp_path / "models", *argv)
    try:
        assert serving_record(proc)["blas_threads"] == want
    finally:
        proc.stop()


def run_worker(tmp_path, threads: int) -> tuple:
    """run_job in a spawned process, as JobManager starts it; its last message."""
    data = tmp_path / "data.txt"
    data.write_text(TEXT)
    job = {"model_config": ModelConfig(hidden_size=8, embedding_dim=4, num_layers=1, seed=0).to_dict(),
           "train_config": TrainConfig(steps=2, batch_size=2, bptt=8, eval_every=2, seed=0).to_dict(),
           "task": "language_model", "data_path": str(data), "dataset_options": {},
           "checkpoint_dir": str(tmp_path / f"ckpt{threads}"), "resume": False,
           "model_path": str(tmp_path / f"model{threads}"), "job_id": f"job-{threads}",
           "blas_threads": threads}
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    worker = ctx.Process(target=run_job, args=(job, queue, stop), daemon=True)
    worker.start()
    try:
        while True:
            message = queue.get(timeout=120)
            if message[0] != "event":
                return message
    finally:
        worker.join(30)
        if worker.is_alive():
            worker.kill()


@pytest.mark.parametrize("threads", [1, 2])
def test_training_worker_limits_its_blas_threads(tmp_path, threads):
    if threads > CORES:
        pytest.skip(f"needs {threads} cores for BLAS to run {threads} threads")
    message = run_worker(tmp_path, threads)
    assert message[0] == "done", message
    assert message[1]["blas_threads"] == threads


def test_blas_threads_setting_is_validated_and_defaults_to_one():
    assert load_config([], {}).blas_threads == 1
    assert load_config(["--blas-threads", "3"], {}).blas_threads == 3
    assert load_config([], {"RNN_BLAS_THREADS": "4"}).blas_threads == 4
    for bad in (["--blas-threads", "0"], ["--blas-threads", "many"]):
        with pytest.raises(ConfigError, match="blas_threads"):
            load_config(bad, {})
