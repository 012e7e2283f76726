"""A training job's record and its files under model_dir/.jobs/<job_id>/ (job.json, events.jsonl, ckpt/).

Records are plain JSON, rewritten atomically on every state change, so jobs survive a server restart; events
are appended one JSON object per line so WatchJob can replay a finished job's history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "INTERRUPTED",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING)
RESUMABLE = (FAILED, CANCELLED, INTERRUPTED)
JOB_ID = re.compile(r"job-[0-9a-f]{12}")


@dataclass
class JobRecord:
    """Everything GetJob reports, plus what a worker needs to (re)start the job."""

    job_id: str
    model: str
    task: str
    model_config: dict[str, Any]  # rnn_engine.config.ModelConfig.to_dict()
    train_config: dict[str, Any]  # rnn_engine.config.TrainConfig.to_dict()
    dataset: dict[str, Any]  # {"file": name in the job dir, "format": str, "options": dict}
    overwrite: bool = False
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total_steps: int = 0
    last_loss: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    event_count: int = 0
    attempts: int = 0  # times a worker started it (resumes add one)

    @property
    def terminal(self) -> bool:
        return self.state not in ACTIVE

    def apply_progress(self, event: dict[str, Any]) -> None:
        """Step, total steps, last loss and numeric metrics of a worker's event (absent ones stay)."""
        rec = self
        rec.step = int(event.get("step") or rec.step)
        rec.total_steps = int(event.get("total_steps") or event.get("steps") or rec.total_steps)
        loss = event.get("loss", event.get("train_loss"))
        if isinstance(loss, int | float):
            rec.last_loss = float(loss)
        metrics = event.get("metrics")
        if isinstance(metrics, dict):
            rec.metrics.update({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobRecord:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class SymlinkRefused(OSError):
    """A path in a job directory is a symlink; it is not followed."""


def _open_nofollow(path: Path, flags: int, mode: str):
    """open() that refuses a symlink as the last component (OSError ELOOP) instead of following it."""
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    return os.fdopen(fd, mode, encoding="utf-8")


class JobFiles:
    """Paths of one job's files, and their atomic reads and writes."""

    def __init__(self, jobs_root: Path, job_id: str) -> None:
        if not JOB_ID.fullmatch(job_id):
            raise ValueError(f"job_id: expected 'job-' and 12 hex digits, got {job_id!r}")
        self.dir = Path(jobs_root) / job_id
        self.record = self.dir / "job.json"
        self.events = self.dir / "events.jsonl"
        self.checkpoints = self.dir / "ckpt"
        self.cancel_request = self.dir / "cancel"  # CancelJob from a server that does not run the job

    def check_no_symlinks(self, record: JobRecord | None = None) -> None:
        """Raise SymlinkRefused when the job directory, or a file or checkpoint in it, is a symlink (a
        planted link must not be read, served or written through; nothing under the model dir follows one)."""
        paths = [self.dir.parent, self.dir, self.record, self.events, self.checkpoints, self.cancel_request,
                 self.dir / "lock", self.record.with_suffix(".json.tmp")]
        if record is not None and isinstance(record.dataset.get("file"), str):
            paths.append(self.data_path(record))
        if self.checkpoints.is_dir() and not self.checkpoints.is_symlink():
            paths.extend(self.checkpoints.iterdir())
        for path in paths:
            if path.is_symlink():
                raise SymlinkRefused(f"{path.name} in the job directory is a symlink (refused)")

    def data_path(self, record: JobRecord) -> Path:
        return self.dir / record.dataset["file"]

    def write_record(self, record: JobRecord) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".json.tmp")
        with _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "w") as f:
            f.write(record.to_json())
        os.replace(tmp, self.record)  # replaces a link itself, never its target

    def read_record(self) -> JobRecord:
        with _open_nofollow(self.record, os.O_RDONLY, "r") as f:
            return JobRecord.from_json(f.read())

    def append_event(self, event: dict[str, Any]) -> None:
        with _open_nofollow(self.events, os.O_WRONLY | os.O_CREAT | os.O_APPEND, "a") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")

    def read_events(self) -> list[dict[str, Any]]:
        try:
            with _open_nofollow(self.events, os.O_RDONLY, "r") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a crash
                break
        return out

    def read_events_from(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Complete event lines after byte `offset`, and the offset past them (WatchJob on another server)."""
        try:
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(self.events, flags)
            with os.fdopen(fd, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        out = []
        for line in data[:end].splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out, offset + end

    def release_working_files(self, record: JobRecord) -> None:
        """Delete the dataset copy and checkpoints of a finished job (its record and events stay)."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.data_path(record).unlink(missing_ok=True)

    def has_checkpoint(self) -> bool:
        """A complete `latest` checkpoint exists (a save cut short by a crash leaves only a temp dir)."""
        return (self.checkpoints / "latest" / "manifest.json").is_file()
