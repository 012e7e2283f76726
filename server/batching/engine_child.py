"""The child side of the generation process (server/batching/engine_process.py): its main loop, the streams
whose records it ships to the server, how errors and metrics cross the pipe.

`_child_main` runs in the spawned process: it receives the model, limits its BLAS pool as the server does, and
runs the unchanged `GenerationScheduler`; every step's records of all streams leave as one message
(`_ChildStream`, `_Worker`). Errors are sent only if they survive a pickle round trip (`_portable`); the
metrics the scheduler observes are recorded (`_RecordingMetrics`) and replayed into the server's
BatchMetrics (`_apply`). The wire format is described in engine_process's docstring.
"""

from __future__ import annotations

import copyreg
import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from rnn_engine.config import GenerationConfig
from rnn_engine.generation.records import GenerationEnd

from ..errors import ServiceError
from ..threads import limit_blas_threads
from .generation import PREFILL_SLOTS, GenerationScheduler, TokenStream
from .settings import BatchMetrics, BatchSettings

PROTOCOL = 5
log = logging.getLogger("rnn.server")


# ---------------------------------------------------------------------------------------------- errors
def _rebuild_service_error(code: str, message: str, field, reason, metadata, resource) -> ServiceError:
    return ServiceError(grpc.StatusCode[code], message, field=field, reason=reason, metadata=metadata,
                        resource=resource)


def _reduce_service_error(exc: ServiceError):
    return _rebuild_service_error, (exc.code.name, exc.message, exc.field, exc.reason, exc.metadata,
                                    exc.resource)


copyreg.pickle(ServiceError, _reduce_service_error)  # its keyword-only constructor defeats Exception's pickle


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives a pickle round trip, else a RuntimeError naming it (INTERNAL in the server)."""
    try:
        pickle.loads(pickle.dumps(exc, protocol=PROTOCOL))
        return exc
    except Exception:  # noqa: BLE001 - anything unpicklable is described instead
        return RuntimeError(f"generation process: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------------- metrics
class _Bound:
    __slots__ = ("sink", "metric", "labels")

    def __init__(self, sink: _RecordingMetrics, metric: str, labels: tuple) -> None:
        self.sink, self.metric, self.labels = sink, metric, labels

    def observe(self, value: float) -> None:
        self.sink.add((self.metric, self.labels, "observe", value))

    def set(self, value: float) -> None:
        self.sink.add((self.metric, self.labels, "set", value))

    def inc(self, value: float = 1) -> None:
        self.sink.add((self.metric, self.labels, "inc", value))


class _Recorder:
    def __init__(self, sink: _RecordingMetrics, metric: str) -> None:
        self.sink, self.metric = sink, metric

    def labels(self, *labels) -> _Bound:
        return _Bound(self.sink, self.metric, labels)


class _RecordingMetrics:
    """BatchMetrics' interface in the child: observations are kept and shipped to the server's metrics."""

    def __init__(self) -> None:
        self._events: list = []
        self._lock = threading.Lock()
        for metric in ("batch_size", "queue_depth", "queue_seconds", "rejected"):
            setattr(self, metric, _Recorder(self, metric))

    def add(self, event: tuple) -> None:
        with self._lock:
            self._events.append(event)

    def take(self) -> list:
        with self._lock:
            events, self._events = self._events, []
        return events


def _apply(metrics: BatchMetrics, events: list) -> None:
    for metric, labels, method, value in events:
        getattr(getattr(metrics, metric).labels(*labels), method)(value)


# ---------------------------------------------------------------------------------------------- child
class _ChildStream(TokenStream):
    """A stream in the child: records go to the next pipe message; backlog = sent - acknowledged."""

    def __init__(self, worker: _Worker, sid: int) -> None:
        super().__init__(None)
        self.worker, self.sid, self.sent, self.acked = worker, sid, 0, 0

    def backlog(self) -> int:
        return self.sent - self.acked

    def put(self, item: Any, notify: bool = True) -> None:
        if isinstance(item, BaseException):
            item = _portable(item)
        self.sent += 1
        self.worker.queue(self.sid, item)
        if notify:
            self.worker.flush()


class _Worker:
    """The child's side: commands from the pipe, the scheduler's records back, one message per step."""

    def __init__(self, conn, model, name: str, settings: BatchSettings) -> None:
        self.conn = conn
        self.metrics = _RecordingMetrics()
        self.scheduler = GenerationScheduler(model, name, settings, self.metrics)  # type: ignore[arg-type]
        self.scheduler.deliver = self._deliver
        self.streams: dict[int, _ChildStream] = {}
        self._out: list = []
        self._out_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._prefill = ThreadPoolExecutor(PREFILL_SLOTS, thread_name_prefix="rnn-prefill")

    def serve(self) -> None:
        try:
            while True:
                message = pickle.loads(self.conn.recv_bytes())
                kind = message[0]
                if kind == "submit":
                    self._prefill.submit(self._submit, *message[1:])
                elif kind == "ack":
                    stream = self.streams.get(message[1])
                    if stream is not None:
                        stream.acked = max(stream.acked, message[2])
                        self.scheduler._wake.set()
                elif kind == "cancel":
                    stream = self.streams.get(message[1])
                    if stream is not None:
                        stream.cancel()
                        self.scheduler._wake.set()
                elif kind == "exit":
                    break
        except (EOFError, OSError):  # the server closed the pipe or died
            pass
        os._exit(0)  # the worker thread may be mid-step: nobody is left to read its tokens

    def _submit(self, sid: int, prompt: Any, cfg: GenerationConfig, deadline: float | None) -> None:
        stream = _ChildStream(self, sid)
        self.streams[sid] = stream
        try:
            self.scheduler.submit(prompt, cfg, None, deadline, stream=stream)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the server's submit
            self.streams.pop(sid, None)
            self._send(("reply", sid, _portable(exc), self.metrics.take()))
            return
        self._send(("reply", sid, None, self.metrics.take()))

    def queue(self, sid: int, item: Any) -> None:
        with self._out_lock:
            self._out.append((sid, item))
        if isinstance(item, GenerationEnd | BaseException):
            self.streams.pop(sid, None)

    def _deliver(self, streams) -> None:
        self.flush()

    def flush(self) -> None:
        with self._out_lock:
            items, self._out = self._out, []
        events = self.metrics.take()
        if items or events:
            self._send(("step", items, events, len(self.scheduler._active)))

    def _send(self, message: tuple) -> None:
        data = pickle.dumps(message, protocol=PROTOCOL)
        with self._send_lock:
            try:
                self.conn.send_bytes(data)
            except OSError:  # the server is gone
                os._exit(0)


def _child_main(conn, name: str, settings: BatchSettings, blas: int | None,
                initializer: Callable[[], None] | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server; the child ends on EOF
    if blas is not None:
        limit_blas_threads(blas)
    if initializer is not None:
        initializer()
    try:
        model = pickle.loads(conn.recv_bytes())  # the model, sent once
    except (EOFError, OSError):
        os._exit(0)
    _Worker(conn, model, name, settings).serve()
