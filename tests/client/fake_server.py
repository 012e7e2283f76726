"""A tiny in-process ModelService whose answers the tests choose (exact statuses, export chunks)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent import futures

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from rnn.v1 import common_pb2, model_service_pb2, model_service_pb2_grpc


def _pack(msg) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


def rich_status(code: grpc.StatusCode, message: str, *, field: str | None = None,
                request_id: str | None = None) -> grpc.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        status.details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    if request_id:
        status.details.append(_pack(error_details_pb2.RequestInfo(request_id=request_id)))
    return rpc_status.to_status(status)


class FakeModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModel fails with the status code named by the model (e.g. "NOT_FOUND"), or answers for "ok".

    ExportOnnx streams `self.export_chunks`, then fails with `self.export_error` if set; `self.export_sha`
    overrides the SHA-256 the server announces.
    """

    def __init__(self) -> None:
        self.export_chunks: list[bytes] = [b"onnx-" * 10, b"bytes" * 10]
        self.export_error: grpc.StatusCode | None = None
        self.export_sha: str | None = None

    def GetModel(self, request, context):
        if request.model == "whoami":  # echo the authorization header as the model name
            meta = dict(context.invocation_metadata())
            return model_service_pb2.GetModelResponse(model=common_pb2.ModelInfo(
                name=meta.get("authorization", "")))
        if request.model == "ok":
            return model_service_pb2.GetModelResponse(model=common_pb2.ModelInfo(
                name="ok", task=common_pb2.TASK_LANGUAGE_MODEL, vocab_size=7))
        code = grpc.StatusCode[request.model]
        context.abort_with_status(rich_status(code, f"model {request.model!r}: failed on purpose",
                                              field="model", request_id="req-123"))

    def ExportOnnx(self, request, context) -> Iterator[model_service_pb2.ExportOnnxResponse]:
        data = b"".join(self.export_chunks)
        sha = self.export_sha or hashlib.sha256(data).hexdigest()
        offset = 0
        for chunk in self.export_chunks:
            yield model_service_pb2.ExportOnnxResponse(chunk=chunk, offset=offset, total_bytes=len(data),
                                                       sha256=sha)
            offset += len(chunk)
        if self.export_error is not None:
            context.abort(self.export_error, "export failed on purpose")


def start_fake_server() -> tuple[grpc.Server, int, FakeModelService]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = FakeModelService()
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, servicer
