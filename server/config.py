"""Server settings: one dataclass filled from flags, then RNN_* environment variables, then defaults.

The flags and variables are the contract in docs/DESIGN.md ("Server configuration"); the container image
and the compose files set the variables. Exposure beyond loopback is checked by server/auth.py.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from rnn_engine.validate import is_int, is_number

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """A flag or environment variable has a bad value; the message names it."""


@dataclass
class ServerConfig:
    """Everything the server needs to start; the defaults serve one local user with no configuration."""

    host: str = "127.0.0.1"  # address to listen on (loopback by default)
    port: int = 50051  # 0 picks a free port
    model_dir: Path = Path("./models")  # models, checkpoints, job records (.jobs/) and uploads (.uploads/)
    store: str = ""  # empty: model_dir is the store; postgresql://...: the database (model_dir: local cache)
    job_lease_seconds: float = 15.0  # PostgreSQL store: a dead worker's job is INTERRUPTED after this
    metrics_port: int = 9464  # Prometheus HTTP endpoint; 0 disables it
    metrics_host: str = ""  # address of the Prometheus endpoint (no auth, plain HTTP); empty: same as host
    max_training_jobs: int = 1  # concurrently running training worker processes
    max_message_bytes: int = 16 * 1024 * 1024  # gRPC send/receive message limit
    max_sequence_length: int = 10000  # steps per input sequence (Predict, each PredictStream sequence)
    max_batch_size: int = 256  # sequences per Predict call
    max_new_tokens: int = 4096  # StreamGenerate upper bound
    max_concurrent_streams: int = 64  # open streaming calls (PredictStream, StreamGenerate, Train, WatchJob)
    log_level: str = "INFO"
    allow_insecure: bool = False  # permit a non-loopback host without TLS and auth (the network is private)
    auth_tokens_file: str = ""  # "role:token" lines (server/auth.py); RNN_AUTH_TOKENS may hold them inline
    tls_cert: str = ""  # PEM server certificate (with tls_key: serve TLS)
    tls_key: str = ""  # PEM private key
    tls_client_ca: str = ""  # PEM CA: clients must present a certificate it signed (mTLS)
    sequence_idle_timeout: float = 60.0  # seconds before an idle PredictStream sequence is released
    max_open_sequences: int = 1024  # PredictStream sequences held at once, over all streams
    max_upload_bytes: int = 256 * 1024 * 1024  # UploadDataset total size
    max_upload_disk_bytes: int = 1024 * 1024 * 1024  # all uploads together on disk (model_dir/.uploads)
    max_concurrent_calls: int = 0  # calls served at once (health excluded); 0: max_concurrent_streams + 16
    max_streams_per_connection: int = 0  # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS; 0: 4 x call limit, >= 100
    request_message_timeout: float = 10.0  # seconds a call may wait for its (first) request message
    max_streams_per_client: int = 0  # open streams of one client (token, else peer host); 0: no own limit
    max_queued_jobs: int = 32  # training jobs waiting for a worker slot
    max_model_parameters: int = 50_000_000  # Train: estimated parameters of the requested model
    shutdown_grace: float = 10.0  # seconds in-flight calls get on SIGTERM
    worker_start_method: str = "spawn"  # multiprocessing context of training workers
    batching: bool = True  # batch concurrent calls of a model (--no-batching: every call runs alone)
    batch_max_size: int = 64  # rows computed together: running generations / sequences per batch, per model
    batch_window_ms: float = 2.0  # Predict / PredictStream: wait this long for more calls to join a batch
    deterministic: bool = False  # generation: a request's tokens identical alone and in any batch (slower)
    generation_process: bool = True  # step each model's generation batch in a child process (own GIL)
    queue_depth: int = 256  # calls waiting per model and kind; more get RESOURCE_EXHAUSTED at once
    model_cache_size: int = 16  # loaded models kept in memory (least recently used dropped first)
    blas_threads: int = 1  # BLAS threads of the server and of each training worker (server/threads.py)

    def validate(self) -> ServerConfig:
        """Check every field; raise ConfigError naming the first bad one. Returns self."""
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"host: expected a host name or address, got {self.host!r}")
        if not isinstance(self.metrics_host, str) or self.metrics_host != self.metrics_host.strip():
            raise ConfigError(
                f"metrics_host: expected a host name or address (or empty), got {self.metrics_host!r}"
            )
        for name, low, high in (
            ("port", 0, 65535),
            ("metrics_port", 0, 65535),
            ("max_training_jobs", 0 if self.store else 1, 64),  # 0: rnn-worker processes train
            ("max_message_bytes", 1024, 2**31 - 1),
            ("max_sequence_length", 1, 10**8),
            ("max_batch_size", 1, 10**6),
            ("max_new_tokens", 1, 10**7),
            ("max_concurrent_streams", 1, 10**5),
            ("max_open_sequences", 1, 10**7),
            ("max_upload_bytes", 1, 2**40),
            ("max_upload_disk_bytes", 1, 2**50),
            ("max_streams_per_client", 0, 10**5),
            ("max_concurrent_calls", 0, 10**6),
            ("max_streams_per_connection", 0, 2**31 - 1),
            ("max_queued_jobs", 0, 10**5),
            ("max_model_parameters", 1, 10**12),
            ("batch_max_size", 1, 4096),
            ("queue_depth", 1, 10**6),
            ("model_cache_size", 1, 10**4),
            ("blas_threads", 1, 256),
        ):
            value = getattr(self, name)
            if not is_int(value) or not low <= value <= high:
                raise ConfigError(f"{name}: expected an int in [{low}, {high}], got {value!r}")
        if not isinstance(self.store, str) or (
            self.store and not self.store.startswith(("postgresql://", "postgres://"))
        ):
            raise ConfigError(
                "store (--store / RNN_STORE): expected empty (the model directory) or a postgresql:// URL, "
                f"got {self.store!r}"
            )
        seconds = ("sequence_idle_timeout", "shutdown_grace", "job_lease_seconds", "request_message_timeout")
        for name in seconds:
            value = getattr(self, name)
            if not is_number(value) or not value > 0:
                raise ConfigError(f"{name}: expected a number > 0, got {value!r}")
        if (
            isinstance(self.batch_window_ms, bool)
            or not isinstance(self.batch_window_ms, int | float)
            or not 0 <= self.batch_window_ms <= 1000
        ):
            raise ConfigError(
                f"batch_window_ms: expected a number in [0, 1000], got {self.batch_window_ms!r}"
            )
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log_level: expected one of {list(LOG_LEVELS)}, got {self.log_level!r}")
        self.log_level = self.log_level.upper()
        if self.worker_start_method not in ("spawn", "forkserver", "fork"):
            raise ConfigError(
                f"worker_start_method: expected spawn, forkserver or fork, got {self.worker_start_method!r}"
            )
        self.model_dir = Path(self.model_dir)
        return self


def _env_name(field_name: str) -> str:
    return "RNN_" + field_name.upper()


def _parse(field_name: str, kind: type, text: str):
    try:
        if kind is bool:
            low = text.strip().lower()
            if low in TRUE_WORDS:
                return True
            if low in FALSE_WORDS:
                return False
            raise ValueError(text)
        return kind(text)
    except ValueError:
        raise ConfigError(
            f"{field_name} (--{field_name.replace('_', '-')} / {_env_name(field_name)}): "
            f"expected {kind.__name__}, got {text!r}"
        ) from None


def _kinds() -> dict[str, type]:
    defaults = ServerConfig()
    return {
        f.name: Path if f.name == "model_dir" else type(getattr(defaults, f.name)) for f in fields(defaults)
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnn-server", description="Serve RNN models over gRPC.")
    for name, kind in _kinds().items():
        flag = "--" + name.replace("_", "-")
        if kind is bool:  # a True default gets a --no-... form too
            action = argparse.BooleanOptionalAction if getattr(ServerConfig(), name) else "store_true"
            parser.add_argument(flag, dest=name, action=action, default=None, help=f"(env {_env_name(name)})")
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=None,
                metavar=name.upper(),
                help=f"default {getattr(ServerConfig(), name)} (env {_env_name(name)})",
            )
    return parser


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> ServerConfig:
    """Flags override environment variables, which override defaults; the result is validated."""
    env = os.environ if env is None else env
    args = vars(build_parser().parse_args(argv))
    values = {}
    for name, kind in _kinds().items():
        raw = args.get(name)
        if raw is None and _env_name(name) in env:
            raw = env[_env_name(name)]
        if raw is not None:
            values[name] = raw if isinstance(raw, bool) else _parse(name, kind, str(raw))
    return ServerConfig(**values).validate()
