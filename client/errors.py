"""The client's one mapping from gRPC status codes to Python exceptions (RnnError and its subclasses)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

# Trailing-metadata keys the server may use to carry its request id (besides google.rpc.RequestInfo).
REQUEST_ID_KEYS = ("request-id", "x-request-id", "rnn-request-id")
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field, from google.rpc.BadRequest: which field and what is wrong with it."""

    field: str
    description: str


@dataclass(frozen=True)
class ErrorDetails:
    """The structured details of a failed call, decoded from google.rpc.Status and trailing metadata."""

    field_violations: tuple[FieldViolation, ...] = ()
    request_id: str | None = None
    reason: str | None = None  # google.rpc.ErrorInfo.reason
    metadata: dict[str, str] = field(default_factory=dict)  # google.rpc.ErrorInfo.metadata
    retry_delay: float | None = None  # seconds, google.rpc.RetryInfo
    debug: str | None = None  # google.rpc.DebugInfo.detail


class RnnError(Exception):
    """A call to the rnn service failed; `.code` is the grpc.StatusCode and `.details` the decoded details."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None,
                 details: ErrorDetails | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.details = details if details is not None else ErrorDetails()

    @property
    def field_violations(self) -> tuple[FieldViolation, ...]:
        return self.details.field_violations

    @property
    def request_id(self) -> str | None:
        return self.details.request_id

    def __str__(self) -> str:
        text = self.message or self.code.name
        for v in self.details.field_violations:
            if v.description not in text:
                text += f"\n  {v.field}: {v.description}"
        return text


class InvalidArgument(RnnError, ValueError):
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RnnError, LookupError):
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RnnError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RnnError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RnnError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(RnnError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(RnnError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(RnnError, ConnectionError):
    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RnnError, TimeoutError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(RnnError):
    default_code = grpc.StatusCode.CANCELLED


class Unimplemented(RnnError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(RnnError):
    """The server failed unexpectedly; quote `.request_id` when reporting it (the server logged it)."""

    default_code = grpc.StatusCode.INTERNAL

    def __str__(self) -> str:
        text = super().__str__()
        if self.request_id and self.request_id not in text:
            text += f" (request id {self.request_id})"
        return text


ERROR_CLASSES: dict[grpc.StatusCode, type[RnnError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNKNOWN: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
}


def _unpack(detail: any_pb2.Any, acc: dict[str, Any]) -> None:
    """Decode one google.rpc detail message into `acc` (unknown kinds are ignored)."""
    for cls in (error_details_pb2.BadRequest, error_details_pb2.RequestInfo, error_details_pb2.ErrorInfo,
                error_details_pb2.RetryInfo, error_details_pb2.DebugInfo):
        if detail.Is(cls.DESCRIPTOR):
            msg = cls()
            detail.Unpack(msg)
            break
    else:
        return
    if isinstance(msg, error_details_pb2.BadRequest):
        acc["field_violations"] += tuple(FieldViolation(v.field, v.description) for v in msg.field_violations)
    elif isinstance(msg, error_details_pb2.RequestInfo):
        acc["request_id"] = msg.request_id or acc["request_id"]
    elif isinstance(msg, error_details_pb2.ErrorInfo):
        acc["reason"], acc["metadata"] = msg.reason or None, dict(msg.metadata)
    elif isinstance(msg, error_details_pb2.RetryInfo):
        acc["retry_delay"] = msg.retry_delay.ToTimedelta().total_seconds()
    else:
        acc["debug"] = msg.detail or None


def decode_details(trailing_metadata: Any) -> ErrorDetails:
    """Decode google.rpc.Status details (grpcio-status format) and a request id from trailing metadata."""
    acc: dict[str, Any] = {"field_violations": (), "request_id": None, "reason": None, "metadata": {},
                           "retry_delay": None, "debug": None}
    for key, value in trailing_metadata or ():
        if key == _STATUS_DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                _unpack(detail, acc)
        elif key in REQUEST_ID_KEYS and acc["request_id"] is None:
            acc["request_id"] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return ErrorDetails(**acc)


def from_rpc_error(error: grpc.RpcError) -> RnnError:
    """Turn a failed call (a grpc.RpcError that is also a grpc.Call) into the matching RnnError subclass."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = (error.details() if hasattr(error, "details") else None) or str(error)
    metadata = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    cls = ERROR_CLASSES.get(code, RnnError)
    return cls(message, code=code, details=decode_details(metadata))


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise any grpc.RpcError inside the block as an RnnError (the original is kept as __cause__)."""
    try:
        yield
    except grpc.RpcError as e:
        raise from_rpc_error(e) from e


F = TypeVar("F", bound=Callable[..., Any])


def translate_errors(func: F) -> F:
    """Decorator form of `translated()` for unary client methods."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with translated():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def translate_stream(iterator: Iterator[Any]) -> Iterator[Any]:
    """Iterate a response stream, re-raising grpc errors raised mid-stream as RnnError."""
    with translated():
        yield from iterator
