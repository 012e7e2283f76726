"""Continuous batching of StreamGenerate in a child process: the batch steps under its own GIL.

In-process (`GenerationScheduler` alone), the worker thread that steps the batch shares the GIL with the
grpc.aio event loop that delivers the tokens: measured at 64 streams on 2 cores, the worker spent ~4 ms of
every ~12 ms step waiting for the GIL while the loop (and grpc C-core, which holds the GIL while it writes to
the socket) delivered the previous step's tokens, and only ~1 of the 2 cores was busy. With
`--generation-process` each batched model gets one child process (multiprocessing "spawn": the server runs
grpc threads, so never fork) that runs the same `GenerationScheduler`, unchanged in its arithmetic, on a copy
of the model (pickled once; the round trip is exact, so the tokens are those of the model in the server);
the server process only delivers tokens.

Wire (one duplex pipe per child; every message is one pickle, protocol 5, `Connection.send_bytes`):
  parent -> child  ("submit", id, prompt, cfg, deadline)   the child replies ("reply", id, error or None, ...)
                   ("cancel", id)                          the stream stops at the child's next step
                   ("ack", id, consumed)                   tokens the reader has taken (every max_backlog//4),
                                                           so that max_backlog pausing still works: the
                                                           child's backlog of a stream is sent - acknowledged
                   ("exit",)                               the scheduler was dropped and its streams ended
  child -> parent  ("step", [(id, record), ...], metrics, in_batch)   ONE message per step, all streams
One reader thread in the server (blocked in recv_bytes without the GIL) puts a step's records into the
server-side TokenStreams and wakes their readers once per message (`wake_readers`). A stream's should_stop
(the servicer's: the client went away) is checked there and by a watcher every WATCH_SECONDS, and becomes a
cancel. The batching metrics the child observes (batch sizes, queue seconds, queue depth, rejected calls)
travel with its messages into the server's BatchMetrics.

Lifecycle: the child starts with the first call, limits its BLAS pool as the server does (server/threads.py),
and exits when the server closes the pipe or dies (EOF: a SIGKILLed server leaves no orphan), or when its
scheduler is dropped (model swapped or evicted) once its in-flight streams have ended. A child that dies
ends its streams with UNAVAILABLE naming what happened (never a hang); the next call starts a new one.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import grpc

from rnn_engine.config import GenerationConfig
from rnn_engine.errors import InvalidInput
from rnn_engine.generation.records import GenerationEnd

from ..errors import ServiceError
from ..threads import blas_threads
from .engine_child import PROTOCOL, _apply, _child_main
from .generation import TokenStream, wake_readers
from .settings import BatchMetrics, BatchSettings

log = logging.getLogger("rnn.server")
WATCH_SECONDS = 0.05  # how often the server checks its streams' should_stop (a client that went away)


# ---------------------------------------------------------------------------------------------- server
class _Reply:
    __slots__ = ("event", "error")

    def __init__(self) -> None:
        self.event, self.error = threading.Event(), None


class ProcessTokenStream(TokenStream):
    """A stream in the server fed by the child's messages; reading it acknowledges tokens, cancel() and a
    true should_stop are forwarded to the child."""

    def __init__(self, should_stop: Callable[[], bool] | None, child: _Child, sid: int,
                 ack_every: int) -> None:
        super().__init__(should_stop)
        self._child, self._sid, self._ack_every = child, sid, ack_every
        self._taken = self._acked = 0
        self.cancel_sent = False

    def cancel(self) -> None:
        super().cancel()
        self.send_cancel()

    def send_cancel(self) -> None:
        if not self.cancel_sent:
            self.cancel_sent = True
            self._child.send(("cancel", self._sid))

    def _take(self, item: Any) -> Any:
        self._taken += 1
        if self._taken - self._acked >= self._ack_every:
            self._acked = self._taken
            self._child.send(("ack", self._sid, self._taken))
        return super()._take(item)


class _Child:
    """One generation process and the server's end of its pipe (reader and watcher threads)."""

    def __init__(self, model_blob: bytes, name: str, settings: BatchSettings, metrics: BatchMetrics,
                 initializer: Callable[[], None] | None) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.name, self.metrics = name, metrics
        self.streams: dict[int, ProcessTokenStream] = {}
        self.replies: dict[int, _Reply] = {}
        self.in_batch = 0
        self.error: ServiceError | None = None  # set once the child is gone
        self.retired = False
        self._exit_sent = False
        self._send_lock = threading.Lock()
        self.process = ctx.Process(target=_child_main, name=f"rnn-generate-{name}", daemon=True,
                                   args=(child_conn, name, settings, blas_threads(), initializer))
        self.process.start()
        child_conn.close()  # the child's end lives in the child only: its death is EOF here
        try:  # over our pipe, not in the Process arguments: a child dying at start-up would leave
            self.conn.send_bytes(model_blob)  # multiprocessing's write of large arguments blocked forever
        except OSError:
            pass  # the reader sees the EOF and reports the child's death
        threading.Thread(target=self._read, daemon=True, name=f"rnn-generate-reader-{name}").start()
        threading.Thread(target=self._watch, daemon=True, name=f"rnn-generate-watch-{name}").start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, message: tuple) -> None:
        """Send a command; a child already gone is ignored here (the reader ends its streams)."""
        data = pickle.dumps(message, protocol=PROTOCOL)
        with self._send_lock:
            try:
                self.conn.send_bytes(data)
            except (OSError, ValueError):
                pass

    def retire(self) -> None:
        """The scheduler is gone: the child exits once its streams have ended."""
        self.retired = True
        self._maybe_exit()

    def _maybe_exit(self) -> None:
        if self.retired and not self.streams and not self.replies and not self._exit_sent:
            self._exit_sent = True
            self.send(("exit",))

    def _read(self) -> None:
        streams, replies = self.streams, self.replies
        try:
            while True:
                message = pickle.loads(self.conn.recv_bytes())
                if message[0] == "step":
                    _, items, events, self.in_batch = message
                    touched = {}
                    for sid, item in items:
                        stream = streams.get(sid)
                        if stream is None:
                            continue
                        stream.put(item, notify=False)
                        touched[sid] = stream
                        if isinstance(item, GenerationEnd | BaseException):
                            streams.pop(sid, None)
                        elif not stream.cancel_sent and stream.should_stop():
                            stream.send_cancel()
                    wake_readers(touched.values())
                else:  # ("reply", sid, error, events)
                    _, sid, error, events = message
                    if error is not None:
                        streams.pop(sid, None)
                    reply = replies.pop(sid, None)
                    if reply is not None:
                        reply.error = error
                        reply.event.set()
                if events:
                    _apply(self.metrics, events)
                self._maybe_exit()
        except (EOFError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 - a bug here must end the streams, not leave them hanging
            log.exception("generation process of model %r: unreadable message", self.name)
            self.process.kill()
            self._die(f"sent a message the server could not read ({type(exc).__name__}: {exc})")
            return
        self._die()

    def _die(self, why: str | None = None) -> None:
        self.process.join(5)
        code = self.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        how = why or how
        self.error = ServiceError(grpc.StatusCode.UNAVAILABLE,
                                  f"the generation process of model {self.name!r} {how} during the call; "
                                  "the next call starts a new one")
        streams, replies = list(self.streams.values()), list(self.replies.values())
        self.streams.clear()
        self.replies.clear()
        for stream in streams:
            stream.put(self.error, notify=False)
        wake_readers(streams)
        for reply in replies:
            reply.error = self.error
            reply.event.set()
        self.conn.close()

    def _watch(self) -> None:
        while self.error is None:
            time.sleep(WATCH_SECONDS)
            for stream in list(self.streams.values()):
                if not stream.cancel_sent and stream.should_stop():
                    stream.send_cancel()


def _retire(holder: list) -> None:
    child, holder[0] = holder[0], None
    if child is not None:
        child.retire()


class ProcessGenerationScheduler:
    """GenerationScheduler's interface, the batch stepped in a child process (see the module docstring).

    `initializer`: a picklable callable run in the child before the model is loaded (tests use it)."""

    def __init__(self, model, name: str, settings: BatchSettings, metrics: BatchMetrics | None = None,
                 initializer: Callable[[], None] | None = None) -> None:
        self.model, self.name, self.settings = model, name, settings
        self.metrics = metrics or BatchMetrics()
        self._initializer = initializer
        self._holder: list[_Child | None] = [None]  # the current child (shared with the finalizer)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._ack_every = max(1, settings.max_backlog // 4)
        self._finalizer = weakref.finalize(self, _retire, self._holder)  # dropped: the child retires

    def _child(self) -> _Child:
        with self._lock:
            child = self._holder[0]
            if child is None or child.error is not None:  # first use, or the last one died
                if child is not None:
                    child.retire()
                blob = pickle.dumps(self.model, protocol=PROTOCOL)
                child = self._holder[0] = _Child(blob, self.name, self.settings, self.metrics,
                                                 self._initializer)
            return child

    @property
    def pid(self) -> int | None:
        """The child's process id (None before the first call)."""
        child = self._holder[0]
        return None if child is None else child.pid

    def submit(self, prompt: Any, cfg: GenerationConfig, should_stop: Callable[[], bool] | None = None,
               deadline: float | None = None) -> ProcessTokenStream:
        """As GenerationScheduler.submit: the child's refusal (invalid settings or prompt, a full queue) is
        raised here."""
        if should_stop is not None and not callable(should_stop):
            raise InvalidInput(f"should_stop: expected a callable or None, got {should_stop!r}")
        child = self._child()
        sid = next(self._ids)
        stream = ProcessTokenStream(should_stop, child, sid, self._ack_every)
        reply = _Reply()
        child.streams[sid] = stream
        child.replies[sid] = reply
        if child.error is not None:  # died while we registered (its reader may have missed us)
            child.streams.pop(sid, None)
            child.replies.pop(sid, None)
            raise child.error
        try:
            message = pickle.dumps(("submit", sid, prompt, cfg, deadline), protocol=PROTOCOL)
        except Exception:
            child.streams.pop(sid, None)
            child.replies.pop(sid, None)
            raise
        with child._send_lock:
            try:
                child.conn.send_bytes(message)
            except (OSError, ValueError):
                pass  # the reader sees the EOF and answers the reply with the child's death
        reply.event.wait()
        if reply.error is not None:
            child.streams.pop(sid, None)
            raise reply.error
        return stream

    def running(self) -> int:
        """Requests in the batch plus those waiting to join it."""
        child = self._holder[0]
        return 0 if child is None else len(child.streams)

    def in_batch(self) -> int:
        """Requests in the running batch (as of the child's last step message)."""
        child = self._holder[0]
        return 0 if child is None else min(child.in_batch, len(child.streams))

    def close(self) -> None:
        """Retire the child now (it exits once its streams have ended; a later call starts a new one)."""
        _retire(self._holder)
