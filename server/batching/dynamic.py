"""Dynamic batching of Predict and PredictStream: calls arriving within a short window run as one model call.

The first call to arrive opens a batch; calls of the same model arriving within `window_ms`, up to
`max_batch_size` sequences, join it. The window is only waited for while calls come together: after a batch
of one call (a caller alone), the next call runs at once, so the window never delays a lone caller (the
first batch of a batcher, with no history, waits for it). The batch runs as one padded, length-masked
`Model.predict` (or `Model.predict_chunk` on the stacked states of the PredictStream sequences) and the
results are split back.
With --deterministic, batches are padded to `rnn_engine.generation.exact_min_rows` sequences (so is a call
with batching off), which makes the recurrent products round the same way batched or not (a lone call then
pays for 2-row products); by default nothing is padded: a lone call runs the 1-row kernel, and a batched
call's probabilities may differ from its lone ones in the last bits. The output layer runs one product per
sequence of T rows, and for small T BLAS may round those differently with the batch's longest length, so
probabilities agree to float32 rounding (about 1e-7) and token ids, labels and tags are the same (barring
exact ties). Calls with different `top_k` run in separate groups of the batch. If a batch fails, its calls
are retried one by one so that each gets its own result or error.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from rnn_engine.generation.plan import exact_min_rows, split_stream_state, stack_stream_states

from .settings import BatchMetrics, BatchSettings, deadline_exceeded, queue_full

IDLE_EXIT_SECONDS = 5.0


def _pad(items: list, rows: int) -> list:
    """`items` with its last entry repeated up to `rows` entries."""
    return items + [items[-1]] * (rows - len(items)) if len(items) < rows else items


def run_predict(model, inputs: list, states: list | None, top_k: int, min_rows: int = 2) -> tuple[list, None]:
    """One Model.predict over all inputs, padded to `min_rows` sequences (batched.exact_min_rows)."""
    return model.predict(_pad(inputs, min_rows), top_k=top_k)[: len(inputs)], None


def run_chunks(model, inputs: list, states: list, top_k: int, min_rows: int = 2) -> tuple[list, list]:
    """One Model.predict_chunk over the stacked states of several PredictStream sequences (padded too)."""
    n = len(inputs)
    results, new = model.predict_chunk(_pad(inputs, min_rows), stack_stream_states(_pad(states, min_rows)),
                                       top_k=top_k)
    return results[:n], split_stream_state(new)[:n]


def predict_rows(model, settings: BatchSettings) -> int:
    """Sequences a Predict / PredictStream batch is padded to: exact_min_rows with --deterministic, else 1."""
    if not settings.deterministic:
        return 1
    return exact_min_rows(model, settings.max_batch_size, "forward")


class _Job:
    __slots__ = ("inputs", "states", "top_k", "deadline", "enqueued", "done", "results", "new_states",
                 "error")

    def __init__(self, inputs: list, states: list | None, top_k: int, deadline: float | None) -> None:
        self.inputs, self.states, self.top_k, self.deadline = inputs, states, top_k, deadline
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.results: list | None = None
        self.new_states: list | None = None
        self.error: BaseException | None = None


class DynamicBatcher:
    """Batches the calls of one model and one kind ("predict" with run_predict, "predict_stream" with
    run_chunks); `call` blocks the caller until its part of a batch is done."""

    def __init__(self, model, name: str, kind: str, run: Callable, settings: BatchSettings,
                 metrics: BatchMetrics | None = None) -> None:
        self.model, self.name, self.kind, self.run = model, name, kind, run
        self.settings = settings
        self.metrics = metrics or BatchMetrics()
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._min_rows: int | None = None
        self._together = True  # the last batch held several calls (or there was none): wait for the window
        self._depth = self.metrics.queue_depth.labels(name, kind)

    def call(self, inputs: list, top_k: int = 1, states: list | None = None,
             deadline: float | None = None) -> tuple[list, list | None]:
        """(results, new states or None) for `inputs`; RESOURCE_EXHAUSTED when the queue is full,
        DEADLINE_EXCEEDED when `deadline` (time.monotonic()) passes first."""
        job = _Job(list(inputs), None if states is None else list(states), top_k, deadline)
        with self._cond:
            if len(self._queue) >= self.settings.queue_depth:
                self.metrics.rejected.labels(self.kind).inc()
                raise queue_full(self.kind, self.settings.queue_depth)
            self._queue.append(job)
            self._depth.set(len(self._queue))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"rnn-{self.kind}-{self.name}")
                self._thread.start()
            self._cond.notify()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not job.done.wait(timeout):
            with self._cond:
                if job in self._queue:
                    self._queue.remove(job)
                    self._depth.set(len(self._queue))
            raise deadline_exceeded(self.kind, time.monotonic() - job.enqueued)
        if job.error is not None:
            raise job.error
        return job.results, job.new_states

    def waiting(self) -> int:
        """Calls queued for the next batch."""
        with self._cond:
            return len(self._queue)

    # ------------------------------------------------------------------------------------------ worker
    def _collect(self) -> list[_Job] | None:
        """Wait for a first call, then for the window to pass or the batch to fill; None: exit."""
        window = self.settings.window_ms / 1000.0
        with self._cond:
            idle_since = time.monotonic()
            while not self._queue:
                if time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                    self._thread = None
                    return None
                self._cond.wait(0.5)
            close = self._queue[0].enqueued + (window if self._together or len(self._queue) > 1 else 0.0)
            while sum(len(j.inputs) for j in self._queue) < self.settings.max_batch_size:
                left = close - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch, rows, now = [], 0, time.monotonic()
            limit = self.settings.max_batch_size
            while self._queue and (not batch or rows + len(self._queue[0].inputs) <= limit):
                job = self._queue.popleft()
                if job.deadline is not None and now > job.deadline:
                    job.error = deadline_exceeded(self.kind, now - job.enqueued)
                    job.done.set()
                    continue
                self.metrics.queue_seconds.labels(self.kind).observe(now - job.enqueued)
                batch.append(job)
                rows += len(job.inputs)
            self._depth.set(len(self._queue))
            self._together = len(batch) > 1
            return batch

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            groups: dict[int, list[_Job]] = {}
            for job in batch:
                groups.setdefault(job.top_k, []).append(job)
            for top_k, jobs in groups.items():
                self._run_group(jobs, top_k)

    def _run_group(self, jobs: list[_Job], top_k: int) -> None:
        inputs = [x for j in jobs for x in j.inputs]
        states = None if jobs[0].states is None else [s for j in jobs for s in j.states]
        results = new_states = None
        try:
            if self._min_rows is None:
                self._min_rows = predict_rows(self.model, self.settings)
            results, new_states = self.run(self.model, inputs, states, top_k, self._min_rows)
        except Exception as exc:  # noqa: BLE001 - retried one by one so each call gets its own error
            if len(jobs) > 1:
                for job in jobs:
                    self._run_group([job], top_k)
                return
            jobs[0].error = exc
        self.metrics.batch_size.labels(self.kind).observe(len(inputs))
        at = 0
        for job in jobs:
            n = len(job.inputs)
            if results is not None:
                job.results = results[at : at + n]
                job.new_states = None if new_states is None else new_states[at : at + n]
            at += n
            job.done.set()

