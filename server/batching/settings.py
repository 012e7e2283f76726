"""Batching settings (from ServerConfig) and the batching metrics (Prometheus, in the server's registry)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rnn_engine.generation.plan import GENERATE_ROWS

from ..errors import ServiceError, exhausted

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class BatchSettings:
    """How calls of one model are grouped (server flags --batching, --batch-max-size, --batch-window-ms,
    --queue-depth, --deterministic, --generation-process)."""

    enabled: bool = True  # off: every call runs alone in its own thread, as before
    max_batch_size: int = GENERATE_ROWS  # rows stepped / predicted together (generation: streams per model)
    window_ms: float = 2.0  # Predict / PredictStream: wait this long for more requests to join a batch
    queue_depth: int = 256  # calls waiting per model and kind; more get RESOURCE_EXHAUSTED at once
    max_backlog: int = 64  # generation: undelivered tokens per stream before that stream pauses
    deterministic: bool = False  # generation: tokens identical alone and in any batch (rows padded, slower)
    process: bool = False  # generation: step each model's batch in a child process (engine_process.py)

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "queue_depth", "max_backlog"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        if isinstance(self.window_ms, bool) or not isinstance(self.window_ms, int | float) or \
                not 0 <= self.window_ms <= 1000:
            raise ValueError(f"window_ms: expected a number in [0, 1000], got {self.window_ms!r}")
        for name in ("enabled", "deterministic", "process"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected a bool, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, config) -> BatchSettings:
        """The settings of a ServerConfig (fields batching, batch_max_size, batch_window_ms, queue_depth)."""
        return cls(enabled=bool(getattr(config, "batching", True)),
                   max_batch_size=int(getattr(config, "batch_max_size", cls.max_batch_size)),
                   window_ms=float(getattr(config, "batch_window_ms", cls.window_ms)),
                   queue_depth=int(getattr(config, "queue_depth", cls.queue_depth)),
                   deterministic=bool(getattr(config, "deterministic", False)),
                   process=bool(getattr(config, "generation_process", cls.process)))


class BatchMetrics:
    """Batch sizes, queue depth, time in queue, rejected calls; by kind (generate/predict/predict_stream)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.batch_size = Histogram("rnn_batch_size", "Rows computed together in one batched step",
                                    ["kind"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("rnn_batch_queue_depth", "Calls waiting to join a batch", ["model", "kind"],
                                 registry=r)
        self.queue_seconds = Histogram("rnn_batch_queue_seconds", "Time a call waited before joining a batch",
                                       ["kind"], buckets=QUEUE_BUCKETS, registry=r)
        self.rejected = Counter("rnn_batch_rejected", "Calls refused because the queue was full", ["kind"],
                                registry=r)


def queue_full(kind: str, depth: int) -> ServiceError:
    """RESOURCE_EXHAUSTED naming the queue_depth limit (message and ErrorInfo as every limit's)."""
    return exhausted("queue_depth", f"{kind} queue is full: {depth} calls are already waiting for this model",
                     depth)


def deadline_exceeded(kind: str, waited: float) -> ServiceError:
    return ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"deadline exceeded after {waited:.3f} s waiting in the {kind} queue")
