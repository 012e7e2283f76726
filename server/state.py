"""What the servicers share: configuration, the model store, jobs, open sequences, metrics, the drain flag."""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from rnn_engine.errors import InvalidInput

from .batching import BatchingPool
from .config import ServerConfig
from .errors import invalid
from .interceptor import note_model
from .jobs import JobBackend, UploadBackend
from .metrics import Metrics
from .sequences import SequenceRegistry
from .store import ModelStore


@dataclass
class ServerState:
    config: ServerConfig
    store: ModelStore  # or pgmodels.PgModelStore (the same methods)
    jobs: JobBackend  # jobs.directory.JobManager or jobs.postgres.PgJobs
    sequences: SequenceRegistry
    metrics: Metrics
    uploads: UploadBackend  # jobs.uploads.UploadStore or jobs.postgres.PgUploads
    draining: threading.Event = field(default_factory=threading.Event)
    batching: BatchingPool | None = None  # server/batching: None runs every call alone
    executor: Executor = field(default_factory=lambda: ThreadPoolExecutor(thread_name_prefix="rnn-rpc"))
    # ^ where the calls' blocking work runs (the server's event loop never blocks)

    def model(self, name: str, field: str = "model"):
        """The loaded model `name`; INVALID_ARGUMENT on `field` if empty or malformed, NOT_FOUND if absent."""
        check_model_name(name, field)
        note_model(name)
        return self.store.get(name)


def check_model_name(name: str, field: str = "model") -> str:
    """INVALID_ARGUMENT on `field` unless `name` is a valid model name."""
    from rnn_engine.modelfile import validate_model_name

    if not name:
        raise invalid(field, "expected a model name, got an empty string")
    try:
        return validate_model_name(name)
    except InvalidInput as exc:
        raise invalid(field, str(exc).split(": ", 1)[-1]) from None
