"""ModelService: list, describe, delete and export (ONNX, streamed in chunks) the stored models."""

from __future__ import annotations

import hashlib

import grpc

from rnn.v1 import common_pb2 as pb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import model_service_pb2_grpc as mpb_grpc
from rnn_engine.errors import EngineError, FailedPrecondition

from ..convert import TASK_ENUMS, TASKS, model_info_to_pb
from ..errors import ServiceError, handle_errors, invalid
from ..state import ServerState, check_model_name
from .paging import page

GRAPHS = {
    mpb.ONNX_GRAPH_UNSPECIFIED: "full",
    mpb.ONNX_GRAPH_FULL: "full",
    mpb.ONNX_GRAPH_STEP: "step",
    mpb.ONNX_GRAPH_ENCODER: "encoder",
    mpb.ONNX_GRAPH_DECODER_STEP: "decoder_step",
}
DEFAULT_CHUNK = 1 << 20


class ModelServicer(mpb_grpc.ModelServiceServicer):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    @handle_errors
    def ListModels(self, request, context):
        if request.task != pb.TASK_UNSPECIFIED and request.task not in TASKS:
            raise invalid("task", f"expected a Task, got {request.task}")
        infos = []
        for name in self.state.store.names():
            try:
                infos.append(self.state.store.info(name))
            except EngineError:  # unreadable or from a newer format: not listed
                continue
        infos = [i for i in infos if not request.task or TASK_ENUMS.get(i["task"]) == request.task]
        chosen, token = page(infos, request.page_size, request.page_token)
        return mpb.ListModelsResponse(models=[model_info_to_pb(i) for i in chosen], next_page_token=token)

    @handle_errors
    def GetModel(self, request, context):
        self.state.model(request.model)
        info = self.state.store.info(request.model, history=True)  # rnnctl plot reads details.history
        return mpb.GetModelResponse(model=model_info_to_pb(info))

    @handle_errors
    def DeleteModel(self, request, context):
        check_model_name(request.model)
        if self.state.jobs.model_busy(request.model):
            raise FailedPrecondition(f"model {request.model!r} is being trained; cancel the job first")
        self.state.store.delete(request.model)
        return mpb.DeleteModelResponse(model=request.model)

    @handle_errors
    def ExportOnnx(self, request, context):
        model = self.state.model(request.model)
        if request.graph not in GRAPHS:
            raise invalid("graph", f"expected an OnnxGraph, got {request.graph}")
        limit = self.state.config.max_message_bytes - 1024
        if request.chunk_size < 0 or request.chunk_size > limit:
            raise invalid(
                "chunk_size",
                f"expected 0..{limit} (max_message_bytes minus framing), got {request.chunk_size}",
            )
        data = export_bytes(model, GRAPHS.get(request.graph) if request.graph else None)
        size, sha, step = len(data), hashlib.sha256(data).hexdigest(), request.chunk_size or DEFAULT_CHUNK
        for offset in range(0, size, step):
            yield mpb.ExportOnnxResponse(
                chunk=data[offset : offset + step], offset=offset, total_bytes=size, sha256=sha
            )


def export_bytes(model, graph: str | None) -> bytes:
    """The serialized ONNX graph (None: the model kind's first graph) from rnn_engine.onnx_export."""
    try:
        from rnn_engine.onnx_export import export_model, graphs_for
    except ImportError:
        raise ServiceError(
            grpc.StatusCode.UNIMPLEMENTED,
            "ONNX export is not available in this build (rnn_engine.onnx_export.export_model is missing)",
        ) from None
    result = export_model(model, graph=graph or graphs_for(model.task)[0])
    if isinstance(result, bytes | bytearray):
        return bytes(result)
    if hasattr(result, "SerializeToString"):
        return result.SerializeToString()
    raise FailedPrecondition(f"graph: export returned {type(result).__name__}, expected ONNX bytes")
