"""Server interceptor: request ids, one structured log line and metrics per call, stream limits, draining.

Every call gets a request id (the client's `x-request-id`/`request-id` metadata if sane, else a fresh one),
returned in initial metadata and in every error status. When the call ends (for any reason: the wrapper's
`finally`) one log line records method, model, status, duration and request id. It is a grpc.aio interceptor:
every behavior it wraps is async (server/bridge.py adapts the sync servicer methods).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import re
import threading
import time
import uuid
from typing import Any

import grpc

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


def client_key(context, meta: dict) -> str:
    """Who a call is from, for per-client limits: its bearer token (hashed, never kept) or its peer host."""
    auth = meta.get("authorization")
    if isinstance(auth, str) and auth:
        return "token:" + hashlib.sha256(auth.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    peer = context.peer() or ""
    return "peer:" + (peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer)


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler; `draining` set means new calls (except health/reflection) get UNAVAILABLE."""

    def __init__(self, metrics: Metrics, limiter: StreamLimiter, draining: threading.Event) -> None:
        self.metrics, self.limiter, self.draining = metrics, limiter, draining

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        full = handler_call_details.method
        if full.startswith(_INFRA_PREFIXES):
            return handler
        method = full.rsplit("/", 1)[-1]
        streaming = handler.request_streaming or handler.response_streaming
        for kind, factory in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ):
            behavior = getattr(handler, kind)
            if behavior is not None:
                wrapped = self._wrap(behavior, method, streaming, handler.response_streaming)
                return factory(
                    wrapped,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    @staticmethod
    def _begin(request, context, method: str) -> tuple[dict[str, Any], dict]:
        """The call's info record (its request id chosen and set for the call's context) and metadata."""
        meta = dict(context.invocation_metadata() or ())
        given = meta.get("x-request-id") or meta.get(REQUEST_ID_KEY) or ""
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        request_id_var.set(rid)
        info = {
            "method": method,
            "model": getattr(request, "model", "") or "",
            "request_id": rid,
            "start": time.perf_counter(),
            "completed": False,
            "stream": False,
            "error": None,
        }
        call_info_var.set(info)
        return info, meta

    async def _admit(self, info: dict[str, Any], meta: dict, context, streaming: bool) -> None:
        """Send the request id; refuse the call while draining or when the stream limits are full."""
        rid = info["request_id"]
        await context.send_initial_metadata(((REQUEST_ID_KEY, rid),))
        if self.draining.is_set():
            err = ServiceError(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
            await self._reject(context, err, rid)
        if streaming:
            info["client"] = client_key(context, meta)
            full = self.limiter.acquire(info["client"])
            if full is not None:
                limit = self.limiter.limit if full == "max_concurrent_streams" else self.limiter.per_client
                await self._reject(context, exhausted(full, "too many open streams", limit), rid)
            info["stream"] = True
            self.metrics.active_streams.labels(info["method"]).inc()

    @staticmethod
    async def _reject(context, err: ServiceError, rid: str) -> None:
        status = to_grpc_status(err, rid)
        await context.abort(status.code, status.details, status.trailing_metadata)

    def _finish(self, info: dict[str, Any], context) -> None:
        if info["stream"]:
            self.limiter.release(info["client"])
            self.metrics.active_streams.labels(info["method"]).dec()
        error = info["error"]
        if info["completed"]:
            status = "OK"
        elif isinstance(error, grpc.aio.AbortError):
            status = status_name(context.code())
        elif error is None or isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            remaining = context.time_remaining()  # ended by the client or by its deadline
            status = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        else:  # a failure outside handle_errors: grpc answers UNKNOWN
            status = "UNKNOWN"
        seconds = time.perf_counter() - info["start"]
        self.metrics.observe_call(info["method"], status, seconds)
        log.info(
            "call",
            extra={
                "method": info["method"],
                "model": info["model"],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": info["request_id"],
            },
        )

    def _wrap(self, behavior, method: str, streaming: bool, response_streaming: bool):
        if response_streaming:

            async def stream_behavior(request, context):
                info, meta = self._begin(request, context, method)
                try:
                    await self._admit(info, meta, context, streaming)
                    async with contextlib.aclosing(behavior(request, context)) as items:
                        async for item in items:
                            yield item
                    info["completed"] = True
                except BaseException as exc:
                    info["error"] = exc
                    raise
                finally:
                    self._finish(info, context)

            return stream_behavior

        async def unary_behavior(request, context):
            info, meta = self._begin(request, context, method)
            try:
                await self._admit(info, meta, context, streaming)
                response = await behavior(request, context)
                info["completed"] = True
                return response
            except BaseException as exc:
                info["error"] = exc
                raise
            finally:
                self._finish(info, context)

        return unary_behavior
