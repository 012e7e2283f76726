"""Plain Python records returned by RnnClient (no protobuf objects leave the client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

TERMINAL_JOB_STATES = ("succeeded", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class JobEvent:
    """One event of a training job: a state change, a progress report, a checkpoint or a log line."""

    job_id: str
    sequence: int  # 0-based position within the job's events
    kind: str  # "state" | "progress" (a step) | "evaluation" | "completed" | "checkpoint" | "log"
    state: str  # "queued" | "running" | "succeeded" | "failed" | "cancelled" | "interrupted" | ""
    step: int
    total_steps: int
    epoch: int
    loss: float
    validation_loss: float | None
    metrics: dict[str, float]
    time: datetime | None
    message: str
    elapsed_seconds: float = 0.0
    items_per_second: float = 0.0
    eta_seconds: float = 0.0
    best_step: int = 0

    @property
    def is_final(self) -> bool:
        """True for the state event that ends the job."""
        return self.kind == "state" and self.state in TERMINAL_JOB_STATES


@dataclass(frozen=True)
class Job:
    """A training job as GetJob/ListJobs describe it."""

    job_id: str
    model: str
    task: str
    state: str
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    step: int
    total_steps: int
    last_loss: float
    metrics: dict[str, float]
    message: str
    spec: dict[str, Any]
    training: dict[str, Any]
    resumable: bool
    event_count: int

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_JOB_STATES


@dataclass(frozen=True)
class ModelInfo:
    """A stored model: architecture, sizes, labels, metrics and the engine's full info dict (`details`)."""

    name: str
    task: str
    spec: dict[str, Any]
    vocab_size: int
    labels: list[str]
    parameter_count: int
    metrics: dict[str, float]
    created: datetime | None
    training: dict[str, Any]
    input_size: int
    output_size: int
    job_id: str
    details: dict[str, Any]


class LabelScore(NamedTuple):
    """A label (or token) with its probability."""

    label: str
    id: int
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The model's output for one input sequence.

    `top_k[t]` lists the best labels at output step t (one step for many-to-one models);
    `distribution` is (steps, classes) and `values` (steps, outputs) when the server sent them.
    """

    length: int
    top_k: list[list[LabelScore]]
    distribution: np.ndarray | None
    values: np.ndarray | None
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)  # tagging: the text of each input step's token
    task: str = ""  # the model's task, e.g. "classification"
    log_probs: list[float] = field(default_factory=list)  # output "log_likelihood": ln P of each input token
    log_likelihood: float | None = None  # output "log_likelihood": their sum (nats)
    perplexity: float | None = None  # output "log_likelihood": exp(-log_likelihood / length)

    @property
    def labels(self) -> list[str]:
        """The most probable label at each output step."""
        return [scores[0].label for scores in self.top_k if scores]

    @property
    def label(self) -> str | None:
        """The most probable label of the last output step (the answer of a classifier)."""
        labels = self.labels
        return labels[-1] if labels else None


@dataclass(frozen=True)
class StreamResult:
    """The answer to one chunk of a PredictStream session."""

    sequence_id: str
    prediction: Prediction
    steps_seen: int
    ended: bool


@dataclass(frozen=True)
class GeneratedToken:
    """One generated token as it arrives."""

    text: str
    id: int
    logprob: float
    index: int
    value: float | None = None  # forecasting models: the predicted value


@dataclass(frozen=True)
class GenerationFinish:
    """The last record of a generation stream: why it ended and the whole text."""

    reason: str  # "length" | "stop_sequence" | "end_of_sequence" | "cancelled"
    prompt_tokens: int
    generated_tokens: int
    text: str
    stop_sequence: str


@dataclass(frozen=True)
class UploadedDataset:
    dataset_id: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class ExportedModel:
    """Where ExportOnnx wrote the file, its size and SHA-256 (checked against the server's)."""

    path: str
    size_bytes: int
    sha256: str
