"""PredictStream sequences: per-sequence hidden state kept between chunks, released on end or when idle.

Like Triton's sequence batcher: a sequence starts with `start`, carries its state across chunks, and is
released by `end`, by its stream closing, or after `idle_timeout` seconds without a chunk (background reaper).
Keys are (stream, sequence id), so different streams may reuse ids.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ServiceError, exhausted
from .metrics import Metrics


@dataclass
class Sequence:
    """One open sequence: its model, engine state and counters."""

    model_name: str
    model: Any
    state: Any
    steps_seen: int = 0
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SequenceRegistry:
    """All open sequences of the server; thread-safe; `close()` stops the reaper."""

    def __init__(self, idle_timeout: float, max_open: int, metrics: Metrics | None = None) -> None:
        self.idle_timeout, self.max_open, self.metrics = idle_timeout, max_open, metrics
        self._seqs: dict[tuple[int, str], Sequence] = {}
        # why an idle sequence was released (for a clear error); ids are at most 256 characters
        # (server/wire.py) and the table is cleared past 10 * max_open entries, so it stays small
        self._released: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, daemon=True, name="rnn-sequence-reaper")
        self._reaper.start()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.active_sequences.set(len(self._seqs))

    def open(self, stream: int, seq_id: str, model_name: str, model: Any, state: Any) -> Sequence:
        """Start (or restart) a sequence; RESOURCE_EXHAUSTED past `max_open`."""
        with self._lock:
            key = (stream, seq_id)
            if key not in self._seqs and len(self._seqs) >= self.max_open:
                raise exhausted("max_open_sequences", "too many sequences are already open", self.max_open)
            seq = Sequence(model_name, model, state)
            self._seqs[key] = seq
            self._released.pop(key, None)
            self._gauge()
            return seq

    def get(self, stream: int, seq_id: str) -> Sequence:
        """The open sequence, touched; NOT_FOUND with the reason when it is not open."""
        import grpc

        with self._lock:
            seq = self._seqs.get((stream, seq_id))
            if seq is None:
                why = self._released.get(
                    (stream, seq_id), "it was never started (send start=true first) or it ended")
                raise ServiceError(
                    grpc.StatusCode.NOT_FOUND,
                    f"sequence_id: sequence {seq_id!r} is not open: {why}",
                    field="sequence_id",
                )
            seq.last_used = time.monotonic()
            return seq

    def release(self, stream: int, seq_id: str) -> None:
        """Forget an ended sequence entirely (nothing is kept per ended sequence)."""
        with self._lock:
            self._seqs.pop((stream, seq_id), None)
            self._released.pop((stream, seq_id), None)
            self._gauge()

    def close_stream(self, stream: int) -> None:
        """Release every sequence of a finished stream."""
        with self._lock:
            for key in [k for k in self._seqs if k[0] == stream]:
                del self._seqs[key]
            for key in [k for k in self._released if k[0] == stream]:
                del self._released[key]
            self._gauge()

    def reap(self, now: float | None = None) -> int:
        """Release sequences idle for longer than the timeout; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [k for k, s in self._seqs.items() if now - s.last_used > self.idle_timeout]
            for key in idle:
                del self._seqs[key]
                self._released[key] = f"it was released after {self.idle_timeout:g} s idle"
            if len(self._released) > 10 * self.max_open:
                self._released.clear()
            self._gauge()
            return len(idle)

    def __len__(self) -> int:
        return len(self._seqs)

    def _reap_loop(self) -> None:
        while not self._stop.wait(min(1.0, self.idle_timeout / 4)):
            self.reap()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._seqs.clear()
            self._gauge()
