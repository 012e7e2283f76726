"""The standard google.rpc detail message of each error kind that has one (besides BadRequest/ErrorInfo).

NOT_FOUND carries a `google.rpc.ResourceInfo` (resource_type "model" | "job" | "dataset" | "file", the name
asked for); RESOURCE_EXHAUSTED a `google.rpc.QuotaFailure` with one violation: subject the request field (or
"server"), quota_id the server limit's name (the flag without dashes), quota_value its value when known.
server/errors.py packs them into the status beside BadRequest, ErrorInfo and RequestInfo.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2


def resource_of(exc: BaseException) -> tuple[str, str] | None:
    """(resource_type, resource_name) an engine NotFound names, if it does."""
    kind, name = getattr(exc, "resource_type", None), getattr(exc, "resource_name", None)
    return (str(kind), str(name)) if kind else None


def standard_details(err) -> list[Message]:
    """Detail messages for a ServiceError `err` (server/errors.py) beyond BadRequest, ErrorInfo and
    RequestInfo."""
    if err.code == grpc.StatusCode.NOT_FOUND:
        kind, name = err.resource or ("", "")
        info = error_details_pb2.ResourceInfo(resource_type=kind, resource_name=name, description=err.message)
        return [info]
    if err.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=err.field or "server", description=err.message, quota_id=err.metadata.get("limit", "")
        )
        value = err.metadata.get("limit_value", "")
        if value.isdigit():
            violation.quota_value = int(value)
        return [error_details_pb2.QuotaFailure(violations=[violation])]
    return []
