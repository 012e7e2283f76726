"""The one place where failures become gRPC statuses: engine errors, request errors, the unexpected.

Mapping (docs/DESIGN.md): InvalidInput -> INVALID_ARGUMENT (with a google.rpc.BadRequest field violation
naming the field), NotFound -> NOT_FOUND, AlreadyExists -> ALREADY_EXISTS,
FailedPrecondition -> FAILED_PRECONDITION,
Cancelled -> CANCELLED; `ServiceError` carries any other code chosen by the server (RESOURCE_EXHAUSTED naming
the limit, UNAVAILABLE while draining, ...). Anything else is logged with its traceback and the request id and
returned as INTERNAL carrying that id; the server keeps serving. Every error status carries the request id in
trailing metadata (`request-id`) and as google.rpc.RequestInfo.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rnn_engine import errors as engine_errors

from . import error_details
from .bridge import CallAborted

log = logging.getLogger("rnn.server")
REQUEST_ID_KEY = "request-id"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
MAX_MESSAGE_CHARS = 1000  # error messages are clipped: they travel twice in the trailing metadata


class ServiceError(Exception):
    """A failure with a chosen status code; `field` adds a BadRequest violation, `reason` an ErrorInfo,
    `resource` (type, name) the ResourceInfo of a NOT_FOUND (server/error_details.py)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field: str | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        resource: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
        self.reason, self.metadata = reason, dict(metadata or {})
        self.resource = resource


def invalid(field: str, message: str) -> ServiceError:
    """INVALID_ARGUMENT naming the request field (dotted path, e.g. "inputs[3].values.data")."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}", field=field)


def exhausted(limit: str, message: str, value: int | None = None) -> ServiceError:
    """RESOURCE_EXHAUSTED naming the server limit (e.g. "max_batch_size") and its value in the message,
    ErrorInfo and QuotaFailure; `message` says what was asked for and does not repeat the limit."""
    named = limit if value is None else f"{limit}={value}"
    metadata = {"limit": limit} if value is None else {"limit": limit, "limit_value": str(value)}
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{message} (server limit {named})",
        reason="LIMIT_EXCEEDED",
        metadata=metadata,
    )


def with_field_prefix(exc: engine_errors.InvalidInput, prefix: str, rename: dict[str, str] | None = None):
    """Re-raise an engine InvalidInput on field `prefix.<its field>` as INVALID_ARGUMENT."""
    name = exc.field or ""
    message = str(exc).removeprefix(f"{name}:").strip() if name else str(exc)
    name = (rename or {}).get(name, name)
    field = f"{prefix}.{name}" if prefix and name else (prefix or name or "request")
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}", field=field)


_ENGINE_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (engine_errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (engine_errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (engine_errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (engine_errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (engine_errors.Cancelled, grpc.StatusCode.CANCELLED),
)


def classify(exc: BaseException) -> ServiceError | None:
    """The ServiceError for an expected failure, or None when `exc` is unexpected (-> INTERNAL)."""
    if isinstance(exc, ServiceError):
        return exc
    for kind, code in _ENGINE_CODES:
        if isinstance(exc, kind):
            field = None
            if code == grpc.StatusCode.INVALID_ARGUMENT:  # every INVALID_ARGUMENT names a field, the
                field = exc.field or "request"  # exception's (tests/engine/test_error_fields.py)
            return ServiceError(code, str(exc), field=field, resource=error_details.resource_of(exc))
    return None


def current_request_id() -> str:
    """The id of the call being served (set by the interceptor), or a fresh one."""
    rid = request_id_var.get()
    if rid is None:
        rid = uuid.uuid4().hex[:16]
        request_id_var.set(rid)
    return rid


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters (messages may echo request values; metadata is limited to 16 KiB)."""
    return text if len(text) <= limit else text[: limit - 30] + f"... ({len(text) - limit + 30} more chars)"


def to_grpc_status(err: ServiceError, request_id: str) -> grpc.Status:
    """A grpc.Status with google.rpc details (BadRequest / ErrorInfo / RequestInfo) and the request id."""
    message = clip(err.message)
    status = status_pb2.Status(code=err.code.value[0], message=message)
    if err.field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=clip(err.field, 200), description=message
        )
        status.details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    if err.reason:
        status.details.append(
            _pack(error_details_pb2.ErrorInfo(reason=err.reason, domain="rnn.v1", metadata=err.metadata))
        )
    status.details.extend(_pack(m) for m in error_details.standard_details(err))
    status.details.append(_pack(error_details_pb2.RequestInfo(request_id=request_id)))
    base = rpc_status.to_status(status)
    return rpc_status._Status(
        base.code, base.details, (*base.trailing_metadata, (REQUEST_ID_KEY, request_id))
    )


def _status_for(exc: BaseException) -> grpc.Status:
    """The status a failure ends its call with; unexpected errors are logged and become INTERNAL."""
    rid = current_request_id()
    err = classify(exc)
    if err is None:
        log.error("unexpected error, request_id=%s", rid, exc_info=exc)
        err = ServiceError(
            grpc.StatusCode.INTERNAL, f"internal error (request id {rid}); the server logged the details"
        )
    return to_grpc_status(err, rid)


def abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    """End the call with the status for `exc` (never returns); unexpected errors are logged as INTERNAL."""
    context.abort_with_status(_status_for(exc))


async def abort_async(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    """`abort` for a grpc.aio call (raises grpc.aio.AbortError)."""
    status = _status_for(exc)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _is_abort(exc: BaseException) -> bool:
    # grpc raises a bare Exception from a sync context's abort() (CallAborted from ours: server/bridge.py),
    # grpc.aio.AbortError from an async one, and grpc.RpcError from a request iterator whose call already
    # ended (client cancelled, message over the size limit); all must pass through untouched.
    return (type(exc) is Exception and not exc.args) or isinstance(
        exc, (grpc.RpcError, grpc.aio.AbortError, CallAborted)
    )


def handle_errors(method: Callable) -> Callable:
    """Decorate a servicer method (plain, generator or async generator) so every failure leaves through
    `abort`."""
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def async_stream_wrapper(self, request, context):
            try:
                async with contextlib.aclosing(method(self, request, context)) as items:
                    async for item in items:
                        yield item
            except Exception as exc:  # noqa: BLE001
                if _is_abort(exc):
                    raise
                await abort_async(context, exc)

        return async_stream_wrapper

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream_wrapper(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - the one catch-all, mapped by classify()
                if _is_abort(exc):
                    raise
                abort(context, exc)

        return stream_wrapper

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001
            if _is_abort(exc):
                raise
            abort(context, exc)

    return wrapper


def status_name(code: Any) -> str:
    """'OK', 'NOT_FOUND', ... for a grpc.StatusCode or None (None means OK)."""
    return "OK" if code is None else getattr(code, "name", str(code))


__all__ = [
    "ServiceError",
    "invalid",
    "exhausted",
    "with_field_prefix",
    "classify",
    "abort",
    "abort_async",
    "handle_errors",
    "current_request_id",
    "request_id_var",
    "to_grpc_status",
    "status_name",
    "code_pb2",
]
