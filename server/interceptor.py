"""Server interceptor: request ids, one structured log line and metrics per call, stream limits, draining.

Every call gets a request id (the client's `x-request-id`/`request-id` metadata if sane, else a fresh one),
returned in initial metadata and in every error status. When the call ends (for any reason, seen through
`context.add_callback`) one log line records method, model, status, duration and request id.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import threading
import time
import uuid
from typing import Any

import grpc

from .errors import REQUEST_ID_KEY, ServiceError, exhausted, request_id_var, to_grpc_status
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


class CallInterceptor(grpc.ServerInterceptor):
    """Wraps every handler; `draining` set means new calls (except health/reflection) get UNAVAILABLE."""

    def __init__(self, metrics: Metrics, limiter: StreamLimiter, draining: threading.Event) -> None:
        self.metrics, self.limiter, self.draining = metrics, limiter, draining

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
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

    def _start(self, request, context, method: str, streaming: bool) -> dict[str, Any]:
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
        }
        call_info_var.set(info)
        context.send_initial_metadata(((REQUEST_ID_KEY, rid),))
        context.add_callback(lambda: self._finish(info, context))
        if self.draining.is_set():
            self._reject(context, ServiceError(grpc.StatusCode.UNAVAILABLE, "server is shutting down"), rid)
        if streaming:
            info["client"] = client_key(context, meta)
            full = self.limiter.acquire(info["client"])
            if full is not None:
                limit = self.limiter.limit if full == "max_concurrent_streams" else self.limiter.per_client
                self._reject(context, exhausted(full, f"too many open streams ({limit})"), rid)
            info["stream"] = True
            self.metrics.active_streams.labels(method).inc()
        return info

    @staticmethod
    def _reject(context, err: ServiceError, rid: str) -> None:
        context.abort_with_status(to_grpc_status(err, rid))

    def _finish(self, info: dict[str, Any], context) -> None:
        if info.get("finished"):
            return
        info["finished"] = True
        if info["stream"]:
            self.limiter.release(info["client"])
            self.metrics.active_streams.labels(info["method"]).dec()
        code = context.code()
        if code is None or code == grpc.StatusCode.OK:
            if info["completed"]:
                status = "OK"
            else:  # ended by the client or by its deadline
                remaining = context.time_remaining()
                status = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
        else:
            status = code.name
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

            def stream_behavior(request, context):
                info = self._start(request, context, method, streaming)
                yield from behavior(request, context)
                info["completed"] = True

            return stream_behavior

        def unary_behavior(request, context):
            info = self._start(request, context, method, streaming)
            response = behavior(request, context)
            info["completed"] = True
            return response

        return unary_behavior
