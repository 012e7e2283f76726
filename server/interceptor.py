"""Server interceptor: admission (draining, credentials, request deadline, decoding, call and stream limits),
request ids, one structured log line and metrics per call.

Every call gets a request id (the client's `x-request-id`/`request-id` metadata if sane, else a fresh one),
returned in initial metadata and in every error status. When the call ends (for any reason: the wrapper's
`finally`) one log line records method, model, status, duration, request id and the limit that refused it,
if any. It is a grpc.aio interceptor: every behavior it wraps is async (server/bridge.py adapts the sync
servicer methods); see CallInterceptor for the order in which a call is admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import threading
import time
import uuid
from typing import Any, NoReturn

import grpc

from . import auth, wire
from .errors import REQUEST_ID_KEY, ServiceError, exhausted, request_id_var, status_name, to_grpc_status
from .metrics import Metrics

log = logging.getLogger("rnn.server.calls")
call_info_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "call_info", default=None
)
_SANE_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# Infrastructure services answer even while draining and do not count as streams.
_INFRA_PREFIXES = ("/grpc.health.", "/grpc.reflection.")


def note_model(name: str) -> None:
    """Record the model a call is about, for its log line."""
    info = call_info_var.get()
    if info is not None and name:
        info["model"] = name


class StreamLimiter:
    """Counts open streaming calls against `max_concurrent_streams` in total and `per_client` per client."""

    def __init__(self, limit: int, per_client: int = 0) -> None:
        self.limit, self.open = limit, 0
        self.per_client = per_client or limit  # 0: a client may use every slot
        self.by_client: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str = "") -> str | None:
        """Take a slot for `client`; None when granted, else the name of the limit that is full."""
        with self._lock:
            if self.open >= self.limit:
                return "max_concurrent_streams"
            if self.by_client.get(client, 0) >= self.per_client:
                return "max_streams_per_client"
            self.open += 1
            self.by_client[client] = self.by_client.get(client, 0) + 1
            return None

    def release(self, client: str = "") -> None:
        with self._lock:
            self.open -= 1
            left = self.by_client.get(client, 0) - 1
            if left > 0:
                self.by_client[client] = left
            else:
                self.by_client.pop(client, None)


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every rnn.v1 handler (health and reflection pass untouched, outside every limit).

    Each call is served as a request-streaming call, so the interceptor runs from the call's HEADERS on
    and bounds what a peer can hold before it has proven anything: the request id is sent; while draining
    the call is UNAVAILABLE; credentials are checked (`tokens`: server/auth.py) before any message is
    read; the (first) request message must arrive within `request_timeout` seconds (DEADLINE_EXCEEDED
    naming request_message_timeout); undecodable or over-long requests are INVALID_ARGUMENT (server/wire.py);
    only then does the call take a slot of `max_calls` (and a streaming call one of the stream limiter).
    Every refusal is logged with its limit and counted (rnn_refused_calls_total{limit})."""

    def __init__(self, metrics: Metrics, limiter: StreamLimiter, draining: threading.Event, *,
                 tokens: auth.TokenTable | None = None, max_calls: int = 0,
                 request_timeout: float = 10.0) -> None:
        self.metrics, self.limiter, self.draining = metrics, limiter, draining
        self.tokens, self.max_calls, self.request_timeout = tokens, max_calls, request_timeout
        self.calls = 0  # admitted calls (changed on the loop thread only)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        full = handler_call_details.method
        if full.startswith(_INFRA_PREFIXES):
            return handler
        behavior = next(getattr(handler, kind) for kind in _KINDS if getattr(handler, kind) is not None)
        call = _Call(self, full, handler, behavior)
        factory = grpc.stream_stream_rpc_method_handler if handler.response_streaming \
            else grpc.stream_unary_rpc_method_handler
        return factory(
            call.stream_behavior if handler.response_streaming else call.unary_behavior,
            request_deserializer=wire.safe_deserializer(
                handler.request_deserializer, wire.type_name_of(handler.request_deserializer)),
            response_serializer=handler.response_serializer,
        )


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # a read left behind by a refused call: its outcome is not needed


class _Call:
    """How one method's calls are admitted, run and recorded (a fresh info record per call)."""

    def __init__(self, owner: CallInterceptor, full: str, handler, behavior) -> None:
        self.owner, self.full, self.behavior = owner, full, behavior
        self.method = full.rsplit("/", 1)[-1]
        self.request_streaming = handler.request_streaming
        self.streaming = handler.request_streaming or handler.response_streaming

    # ---------------------------------------------------------------- admission
    def _begin(self, context) -> dict[str, Any]:
        """The call's info record (its request id chosen and set for the call's context)."""
        meta = context.invocation_metadata() or ()
        given = next((v for k, v in meta if k in ("x-request-id", REQUEST_ID_KEY) and isinstance(v, str)), "")
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        request_id_var.set(rid)
        info = {"method": self.method, "model": "", "request_id": rid, "start": time.perf_counter(),
                "completed": False, "stream": False, "call": False, "error": None, "status": None,
                "abort": None, "limit": None}
        call_info_var.set(info)
        return info

    async def _reject(self, info: dict[str, Any], context, err: ServiceError, limit: str | None = None):
        """End the call with `err` (raises grpc.aio.AbortError); a refusal by a limit is counted."""
        if limit is not None:
            info["limit"] = limit
            self.owner.metrics.refused.labels(self.method, limit).inc()
        status = to_grpc_status(err, info["request_id"])
        info["status"] = err.code.name
        try:
            await context.abort(status.code, status.details, status.trailing_metadata)
        except grpc.aio.AbortError as exc:
            info["abort"] = exc
            raise

    async def _headers(self, info: dict[str, Any], context) -> None:
        """Before any message: the request id is sent, draining and credentials are checked."""
        owner = self.owner
        await context.send_initial_metadata(((REQUEST_ID_KEY, info["request_id"]),))
        if owner.draining.is_set():
            await self._reject(info, context, ServiceError(grpc.StatusCode.UNAVAILABLE,
                                                           "server is shutting down"))
        meta = context.invocation_metadata() or ()
        try:
            token = auth.authenticate(owner.tokens, self.full, meta)
        except ServiceError as err:
            await self._reject(info, context, err)
        info["client"] = auth.client_identity(token, context.peer() or "")

    async def _read(self, info: dict[str, Any], context, first: bool):
        """The next request message, decoded and checked; the first must come within the timeout."""
        read = asyncio.ensure_future(context.read())
        read.add_done_callback(_retrieve)
        if first:
            done, _ = await asyncio.wait((read,), timeout=self.owner.request_timeout)
            if not done:
                timeout = self.owner.request_timeout
                err = ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"no request message within {timeout:g} s "
                                   f"(server limit request_message_timeout={timeout:g})",
                                   reason="LIMIT_EXCEEDED", metadata={"limit": "request_message_timeout"})
                await self._reject(info, context, err, "request_message_timeout")
        message = await read
        if message is grpc.aio.EOF:
            return message
        if isinstance(message, wire.Undecodable):
            await self._reject(info, context, message.error())
        try:
            wire.check_request(message)
        except ServiceError as err:
            await self._reject(info, context, err)
        return message

    async def _admit(self, info: dict[str, Any], context) -> None:
        """Take a call slot (and a stream slot for a streaming call) or refuse naming the full limit."""
        owner = self.owner
        if owner.max_calls and owner.calls >= owner.max_calls:
            await self._reject(info, context, exhausted(
                "max_concurrent_calls", "too many calls in progress", owner.max_calls),
                "max_concurrent_calls")
        owner.calls += 1
        info["call"] = True
        if self.streaming:
            full = owner.limiter.acquire(info["client"])
            if full is not None:
                limit = owner.limiter.limit if full == "max_concurrent_streams" else owner.limiter.per_client
                await self._reject(info, context, exhausted(full, "too many open streams", limit), full)
            info["stream"] = True
            owner.metrics.active_streams.labels(self.method).inc()

    async def _prepare(self, info: dict[str, Any], context):
        """The argument for the wrapped behavior: the request, or an async iterator over the requests."""
        await self._headers(info, context)
        first = await self._read(info, context, first=True)
        if not self.request_streaming:
            if first is grpc.aio.EOF:
                await self._reject(info, context, ServiceError(
                    grpc.StatusCode.INVALID_ARGUMENT, "request: expected a request message, got none",
                    field="request"))
            model = getattr(first, "model", "")
            info["model"] = model if isinstance(model, str) else ""
            await self._admit(info, context)
            return first
        await self._admit(info, context)
        return self._requests(info, context, first)

    async def _requests(self, info: dict[str, Any], context, first):
        message = first
        while message is not grpc.aio.EOF:
            yield message
            message = await self._read(info, context, first=False)

    # ---------------------------------------------------------------- the wrapped behaviors
    def _reraise(self, info: dict[str, Any], exc: BaseException) -> NoReturn:
        """Record `exc` (the exception being handled) and raise what ends the call: once the call was refused
        here, the refusal itself (grpc.aio checks that an aborted call ends with its AbortError; a worker's
        RequestStreamEnded would be logged), else `exc` unchanged."""
        info["error"] = exc
        abort = info["abort"]
        if abort is not None and abort is not exc:
            raise abort from None
        raise  # noqa: PLE0704 - called from an except block: re-raises `exc` with its traceback

    async def unary_behavior(self, _requests, context):
        info = self._begin(context)
        try:
            arg = await self._prepare(info, context)
            response = await self.behavior(arg, context)
            info["completed"] = True
            return response
        except BaseException as exc:
            self._reraise(info, exc)
        finally:
            self._finish(info, context)

    async def stream_behavior(self, _requests, context):
        info = self._begin(context)
        try:
            arg = await self._prepare(info, context)
            async with contextlib.aclosing(self.behavior(arg, context)) as items:
                async for item in items:
                    yield item
            info["completed"] = True
        except BaseException as exc:
            self._reraise(info, exc)
        finally:
            self._finish(info, context)

    # ---------------------------------------------------------------- the record of the call
    def _finish(self, info: dict[str, Any], context) -> None:
        owner = self.owner
        if info["call"]:
            owner.calls -= 1
        if info["stream"]:
            owner.limiter.release(info["client"])
            owner.metrics.active_streams.labels(self.method).dec()
        error = info["error"]
        if info["status"] is not None:
            status = info["status"]
        elif info["completed"]:
            status = "OK"
        elif isinstance(error, grpc.aio.AbortError):
            status = status_name(context.code())
        elif error is None or isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            remaining = context.time_remaining()  # ended by the client or by its deadline
            status = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        else:  # a failure outside handle_errors: grpc answers UNKNOWN
            status = "UNKNOWN"
        seconds = time.perf_counter() - info["start"]
        owner.metrics.observe_call(self.method, status, seconds)
        extra = {"method": self.method, "model": info["model"], "status": status,
                 "duration_ms": round(seconds * 1000, 3), "request_id": info["request_id"]}
        if info["limit"]:
            extra["limit"] = info["limit"]
        log.info("call", extra=extra)
