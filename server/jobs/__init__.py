"""Training jobs, uploaded datasets and the training worker, behind one interface with two backends.

- `directory.JobManager` + `uploads.UploadStore`: the model directory (job records, events and checkpoints
  under `.jobs/`, uploads under `.uploads/`), coordinated between servers on one host by flock files.
- `postgres.PgJobs` + `postgres.PgUploads` (with `pgworker.PgWorker`, the training slots, and server/pg.py):
  the same interface over a PostgreSQL database shared by every replica and `rnn-worker` (`--store`).

The servicers only use the methods of `JobBackend` and `UploadBackend` below, so they never know which
backend is in use. This module imports nothing heavy: a training worker process imports `server.jobs.worker`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol


class JobBackend(Protocol):
    """What TrainingService and ModelService need from the jobs (records are `record.JobRecord`)."""

    staging: Path  # a local directory for temporary files (the dataset pre-check)

    def get(self, job_id: str) -> Any: ...

    def list(self, state: str | None = None, model: str | None = None) -> list[Any]: ...

    def model_busy(self, name: str) -> bool: ...

    def submit(self, *, model: str, task: str, model_config: dict, train_config: dict, data: bytes,
               data_suffix: str, dataset_options: dict, overwrite: bool, model_exists: bool) -> Any: ...

    def resume(self, job_id: str) -> Any: ...

    def cancel(self, job_id: str) -> Any: ...

    def watch(self, job_id: str, from_sequence: int = 0,
              active: Callable[[], bool] = lambda: True) -> Iterator[dict[str, Any]]: ...

    def shutdown(self, timeout: float = 10.0) -> None: ...


class UploadBackend(Protocol):
    """UploadDataset's store: `receive` a stream, `read` an upload back by its id."""

    def receive(self, requests: Iterable[Any], is_active: Callable[[], bool] = lambda: True
                ) -> tuple[str, int, str]: ...

    def read(self, dataset_id: str, field: str = "dataset.dataset_id") -> tuple[bytes, int]: ...
