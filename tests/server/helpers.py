"""Server-test helpers: the three service stubs of a channel, and decoding error details of failed calls."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rnn.v1 import inference_service_pb2_grpc as ipb_grpc
from rnn.v1 import model_service_pb2_grpc as mpb_grpc
from rnn.v1 import training_service_pb2_grpc as tpb_grpc


def details(err: grpc.RpcError) -> dict:
    """{"fields": [violated fields], "limit": ErrorInfo limit or None, "request_id": str or None}."""
    out = {"fields": [], "limit": None, "request_id": None}
    status = rpc_status.from_call(err)
    for any_msg in status.details if status is not None else []:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.RequestInfo,
        ):
            if any_msg.Is(kind.DESCRIPTOR):
                msg = kind()
                any_msg.Unpack(msg)
                if kind is error_details_pb2.BadRequest:
                    out["fields"] += [v.field for v in msg.field_violations]
                elif kind is error_details_pb2.ErrorInfo:
                    out["limit"] = msg.metadata.get("limit")
                else:
                    out["request_id"] = msg.request_id
    return out


def trailing(err: grpc.RpcError, key: str) -> str | None:
    return dict(err.trailing_metadata() or ()).get(key)


def eventually(check, timeout: float = 5.0):
    """Retry `check()` until it returns a truthy value (calls are logged and counted just after they end)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


class Stubs:
    """The three service stubs of one channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.training = tpb_grpc.TrainingServiceStub(channel)
        self.inference = ipb_grpc.InferenceServiceStub(channel)
        self.models = mpb_grpc.ModelServiceStub(channel)
