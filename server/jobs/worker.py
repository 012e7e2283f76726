"""The training worker process: loads the job's data, runs rnn_engine.trainer.train, saves the model.

Runs in a fresh interpreter (multiprocessing spawn context) so a crash cannot take the server down, and talks
back only through `queue`: ("event", dict) per trainer event, then exactly one of ("done", dict),
("cancelled", message) or ("error", kind, message). `stop` (a multiprocessing Event) asks it to stop.
"""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path
from typing import Any

from ..threads import DEFAULT_BLAS_THREADS, limit_blas_threads


def event_dict(event: Any) -> dict[str, Any]:
    """A trainer event (dataclass, NamedTuple, dict or object) as a JSON-able dict."""
    if dataclasses.is_dataclass(event):
        data = dataclasses.asdict(event)
    elif hasattr(event, "_asdict"):
        data = event._asdict()
    elif isinstance(event, dict):
        data = dict(event)
    else:
        data = {k: v for k, v in vars(event).items() if not k.startswith("_")}
    return {k: _plain(v) for k, v in data.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class EventForwarder:
    """Sends trainer events to the server, "step" events at most every `interval` seconds (and the first and
    last step), so a long job's event log stays small; eval, checkpoint and done events always go."""

    def __init__(self, queue, interval: float = 0.2) -> None:
        self.queue, self.interval, self.last = queue, interval, -1e9

    def __call__(self, event: Any) -> None:
        data = event_dict(event)
        if data.get("kind") == "step":
            import time

            now = time.monotonic()
            edge = data.get("step") in (1, data.get("total_steps"))
            if not edge and now - self.last < self.interval:
                return
            self.last = now
        self.queue.put(("event", data))


def orphan_check():
    """A zero-argument callable: True once the server that started this worker has died (even by SIGKILL).

    The worker then stops at its next training step (after a checkpoint) and does not save the model, so an
    orphan never keeps running or writes into the model directory behind a restarted server; the restarted
    server reports the job INTERRUPTED and resumable.
    """
    import multiprocessing as mp
    import os

    parent = mp.parent_process()
    server_pid = parent.pid if parent is not None else os.getppid()
    return lambda: os.getppid() != server_pid


def run_job(job: dict[str, Any], queue, stop) -> None:
    """Worker entry point. `job`: {"model_config", "train_config", "task", "data_path", "dataset_format",
    "dataset_options", "checkpoint_dir", "resume", "model_path", "job_id", "blas_threads", "lock"} ("lock", a
    server.jobs.lock.InheritedLock, keeps the job's lock held while this process lives); the "done" message
    also reports the BLAS thread count in effect ("blas_threads")."""
    from rnn_engine import errors
    from rnn_engine.checkpoint import save_model
    from rnn_engine.config import ModelConfig, TrainConfig
    from rnn_engine.tasks import load_dataset
    from rnn_engine.trainer import train

    orphaned = orphan_check()
    try:
        threads = limit_blas_threads(int(job.get("blas_threads", DEFAULT_BLAS_THREADS)))
        model_config = ModelConfig.from_dict(job["model_config"])
        train_config = TrainConfig.from_dict(job["train_config"])
        dataset = load_dataset(job["task"], job["data_path"], **job["dataset_options"])
        Path(job["checkpoint_dir"]).mkdir(parents=True, exist_ok=True)
        model = train(
            model_config,
            train_config,
            dataset,
            on_event=EventForwarder(queue),
            should_stop=lambda: stop.is_set() or orphaned(),
            checkpoint_dir=job["checkpoint_dir"],
            resume=job["resume"],
        )
        model.training = {**(getattr(model, "training", None) or {}), "job_id": job["job_id"]}
        if orphaned():
            raise errors.Cancelled("the server died before the model was saved")
        save_model(model, Path(job["model_path"]))
        metrics = _plain(dict(getattr(model, "metrics", {}) or {}))
        queue.put(("done", {"metrics": metrics, "blas_threads": threads}))
    except errors.Cancelled as exc:
        queue.put(("cancelled", str(exc) or "cancelled"))
    except errors.EngineError as exc:
        queue.put(("error", type(exc).__name__, str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which marks the job FAILED
        queue.put(("error", type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=5)}"))


if __name__ == "__main__":  # `python -m server.jobs.worker`: the rnn-worker process (PostgreSQL store)
    import sys

    from .pgworker import main

    sys.exit(main())
