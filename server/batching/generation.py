"""Continuous batching of StreamGenerate: one worker thread per model steps every running generation together.

A call's prompt is run in the caller's thread (prefill, `rnn_engine.generation.GenerationRequest`; at most
PREFILL_SLOTS at once per model, which bounds memory: each forward pass copies the weights), then the request
waits in a bounded queue and joins the running batch at the next step; it leaves when it finishes, is
cancelled or hits a stop condition. Each request keeps its own settings and random generator, and the step
follows the plan's kernel policy (`rnn_engine.generation.StepPlan.run_streams`): below its crossover every
stream runs the 1-row kernel on its own state (nothing stacked or split), so its tokens are those it would
produce alone; from the crossover on, one product for the batch (tokens may differ in the last bits of a
logit); with --deterministic the padded batch-invariant step (tokens identical in any batch).

Each stream has its own output queue (`TokenStream`): the worker never blocks on a reader. A stream whose
reader has fallen `max_backlog` tokens behind is skipped (paused) until the reader catches up; the others
keep going. The worker thread starts on demand and exits when it has nothing to do, so a retired scheduler
(model swapped or evicted) finishes its in-flight requests and then disappears.

The worker shares the GIL with the event loop that delivers the tokens. Each NumPy product releases it; with
CPython's default 5 ms switch interval, taking it back while the loop is busy with 64 readers' tokens waits up
to 5 ms per product (a convoy: profiled, a quarter of the worker's time was spent waiting in the wake-up
call alone). The first worker therefore lowers the process's switch interval to GIL_SWITCH_SECONDS, so that
the readers' work fills the worker's GIL-free products instead of stalling them. It also freezes the objects
alive at that moment (`gc.freeze()`, once per process: modules, message descriptors, the first model): a full
collection then no longer walks them, and the pause it puts into every stream's token gap fell from 29-30 ms
to 3.4 ms (measured at 64 streams). The price: cyclic garbage among those objects is never collected (at most
the first model, if it is later evicted).

With --generation-process (the server's default) this scheduler runs unchanged in a child process of its own
(`engine_process.py`), through two hooks: `submit(stream=...)` (a stream class whose backlog is what the
server has acknowledged) and `deliver` (called once per step with the streams given records; in-process it is
`wake_readers`).
"""

from __future__ import annotations

import asyncio
import gc
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from rnn_engine.backend import no_grad
from rnn_engine.config import GenerationConfig
from rnn_engine.generation.plan import StepPlan
from rnn_engine.generation.records import GenerationEnd
from rnn_engine.generation.request import GenerationRequest, advance_all

from .settings import BatchMetrics, BatchSettings, deadline_exceeded, queue_full

IDLE_EXIT_SECONDS = 5.0  # a worker with nothing to do for this long exits (restarted by the next call)
GIL_SWITCH_SECONDS = 0.0002  # see the module docstring (CPython's default: 0.005)
PREFILL_SLOTS = 2  # prompts run at once per model: each forward pass holds its own copies of the weights
_END = object()


class TokenStream:
    """The records of one generation (GeneratedToken..., GenerationEnd), errors re-raised; read either as an
    iterator (blocking) or as an async iterator on an event loop (woken by `put` from the worker thread)."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()  # C-level put/get: a token costs no Condition
        self._cancel = threading.Event()
        self._user_stop = should_stop
        self.enqueued = time.monotonic()
        self.wake: threading.Event | None = None  # set by the scheduler: reading may un-pause the stream
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future] | None = None  # an async reader's

    def should_stop(self) -> bool:
        return self._cancel.is_set() or (self._user_stop is not None and bool(self._user_stop()))

    def cancel(self) -> None:
        """Stop the generation at its next step (the reader then gets Cancelled)."""
        self._cancel.set()

    def backlog(self) -> int:
        return self._q.qsize()

    def put(self, item: Any, notify: bool = True) -> None:
        """Queue `item`; with `notify=False` an async reader waiting for it is not woken (`wake_readers`)."""
        self._q.put(item)
        if notify:
            wake_readers((self,))

    def _take_waiter(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Future] | None:
        waiter, self._waiter = self._waiter, None
        return waiter

    def __iter__(self) -> Iterator:
        return self

    def __next__(self) -> Any:
        return self._take(self._q.get())

    def __aiter__(self) -> AsyncIterator:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = self._q.get_nowait()
                break
            except queue.Empty:
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                self._waiter = (loop, future)
                if self._q.empty():  # checked again: a put between get_nowait and here has not woken us
                    await future  # a wake-up may find nothing new (a step that held its tokens back)
                self._waiter = None
        try:
            return self._take(item)
        except StopIteration:
            raise StopAsyncIteration from None

    def _take(self, item: Any) -> Any:
        if self.wake is not None:
            self.wake.set()
        if item is _END:
            self._q.put(_END)  # stay exhausted
            raise StopIteration
        if isinstance(item, BaseException):
            self._q.put(_END)
            raise item
        if isinstance(item, GenerationEnd):
            self._q.put(_END)
        return item


def wake_readers(streams) -> None:
    """Wake the async readers waiting on `streams`: one call into each event loop, however many streams
    (a write to the loop's wake-up pipe costs as much as a token's whole delivery)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for stream in streams:
        waiter = stream._take_waiter()
        if waiter is not None:
            by_loop.setdefault(waiter[0], []).append(waiter[1])
    for loop, futures in by_loop.items():
        loop.call_soon_threadsafe(_wake_futures, futures)


def _wake_futures(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


_TUNED: list[bool] = []


def _tune_process() -> None:
    """Once per process, before the first worker starts: the GIL switch interval and gc.freeze() (module
    docstring)."""
    if _TUNED:
        return
    _TUNED.append(True)
    if sys.getswitchinterval() > GIL_SWITCH_SECONDS:
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
    gc.freeze()


class _Request:
    __slots__ = ("sampler", "stream", "deadline")

    def __init__(self, sampler: GenerationRequest, stream: TokenStream,
                 deadline: float | None) -> None:
        self.sampler, self.stream, self.deadline = sampler, stream, deadline


class GenerationScheduler:
    """Continuous batching for one loaded model (see the module docstring)."""

    def __init__(self, model, name: str, settings: BatchSettings,
                 metrics: BatchMetrics | None = None) -> None:
        self.model, self.name, self.settings = model, name, settings
        self.metrics = metrics or BatchMetrics()
        self._waiting: deque[_Request] = deque()
        self._reserved = 0  # calls admitted to the queue but still running their prefill
        self._active: list[_Request] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._plan: StepPlan | None = None  # weights and kernel policy, built by the first step
        self._prefill = threading.BoundedSemaphore(PREFILL_SLOTS)
        self._depth = self.metrics.queue_depth.labels(name, "generate")
        self.deliver: Callable = wake_readers  # called once per step with the streams given records

    # ------------------------------------------------------------------------------------------ callers
    def submit(self, prompt: Any, cfg: GenerationConfig, should_stop: Callable[[], bool] | None = None,
               deadline: float | None = None, stream: TokenStream | None = None) -> TokenStream:
        """Queue a generation; RESOURCE_EXHAUSTED at once when `queue_depth` calls are already waiting.

        `deadline` is a time.monotonic() instant; a call still queued then ends with DEADLINE_EXCEEDED.
        Invalid settings or prompt raise here, before anything is queued. `stream`: the output stream to
        fill (a subclass of TokenStream, e.g. the generation process's; default a new TokenStream).
        """
        with self._lock:
            if len(self._waiting) + self._reserved >= self.settings.queue_depth:
                self.metrics.rejected.labels("generate").inc()
                raise queue_full("generate", self.settings.queue_depth)
            self._reserved += 1
        try:
            stream = stream if stream is not None else TokenStream(should_stop)
            with self._prefill:  # bounded, so that 64 arriving calls do not hold 64 weight copies at once
                sampler = GenerationRequest(self.model, prompt, cfg, stream.should_stop)  # validates too
        except BaseException:
            with self._lock:
                self._reserved -= 1
            raise
        stream.wake = self._wake
        with self._lock:
            self._reserved -= 1
            self._waiting.append(_Request(sampler, stream, deadline))
            self._depth.set(len(self._waiting))
            if self._thread is None:
                _tune_process()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"rnn-generate-{self.name}")
                self._thread.start()
        self._wake.set()
        return stream

    def running(self) -> int:
        """Requests in the batch plus those waiting to join it."""
        with self._lock:
            return len(self._active) + len(self._waiting) + self._reserved

    def in_batch(self) -> int:
        """Requests currently in the running batch."""
        with self._lock:
            return len(self._active)

    # ------------------------------------------------------------------------------------------ worker
    def _admit(self) -> None:
        """Move waiting requests into the batch (those past their deadline end instead)."""
        with self._lock:
            now = time.monotonic()
            expired = [r for r in self._waiting if r.deadline is not None and now > r.deadline]
            for req in expired:
                self._waiting.remove(req)
                req.stream.put(deadline_exceeded("generate", now - req.stream.enqueued))
            while self._waiting and len(self._active) < self.settings.max_batch_size:
                req = self._waiting.popleft()
                self.metrics.queue_seconds.labels("generate").observe(now - req.stream.enqueued)
                self._active.append(req)
            self._depth.set(len(self._waiting))

    def _run(self) -> None:
        idle_since = None
        while True:
            self._admit()
            if not self._active:
                with self._lock:
                    if not self._waiting and self._reserved == 0 and idle_since is not None and \
                            time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                        self._thread = None
                        return
                idle_since = idle_since or time.monotonic()
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            idle_since = None
            try:
                worked = self._iterate()
            except Exception as exc:  # noqa: BLE001 - a bug must not leave readers waiting forever
                self._fail_all(exc)
                continue
            if not worked:
                self._wake.wait(0.01)  # every stream is paused on its reader
                self._wake.clear()

    def _iterate(self) -> bool:
        """Emit one token per unpaused request, then step them together; False when all were paused.

        The tokens of all requests are chosen in one pass (`advance_all`), row by row."""
        going = [r for r in self._active
                 if r.stream.backlog() < self.settings.max_backlog or r.stream.should_stop()]
        if not going:
            return False
        ready, done = [], []
        for req, out in zip(going, advance_all([r.sampler for r in going]), strict=True):
            if isinstance(out, BaseException):  # Cancelled, or a failure handed to this call only
                req.stream.put(out, notify=False)
                done.append(req)
                continue
            for record in out:
                req.stream.put(record, notify=False)
            (done if req.sampler.done else ready).append(req)
        self.deliver([r.stream for r in going])
        if done:
            with self._lock:
                self._active = [r for r in self._active if r not in done]
        if ready:
            self._step(ready)
        return True

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            failed, self._active = self._active, []
        for r in failed:
            r.stream.put(exc)

    def _step(self, ready: list[_Request]) -> None:
        import numpy as np

        try:
            if self._plan is None:  # weight copies for this (never retrained) model
                self._plan = StepPlan(self.model, self.settings.deterministic, self.settings.max_batch_size)
            ids = np.array([r.sampler.token for r in ready], dtype=np.int64)
            with no_grad():
                logits, states = self._plan.run_streams(ids, [r.sampler.state for r in ready])
        except Exception as exc:  # noqa: BLE001 - the whole step failed: every request in it ends
            with self._lock:
                self._active = [r for r in self._active if r not in ready]
            for r in ready:
                r.stream.put(exc)
            return
        self.metrics.batch_size.labels("generate").observe(len(ready))
        for r, row, st in zip(ready, logits, states, strict=True):
            r.sampler.feed(row, st)
