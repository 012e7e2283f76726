"""Every error kind with a standard google.rpc detail message carries it (decoded with grpcio-status)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb


def call_error(fn, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        result = fn(request, timeout=30)
        if not hasattr(result, "SerializeToString"):
            list(result)
    return err.value


def detail(err: grpc.RpcError, kind):
    """The one detail of type `kind` in the error's google.rpc.Status."""
    status = rpc_status.from_call(err)
    found = []
    for packed in status.details:
        if packed.Is(kind.DESCRIPTOR):
            msg = kind()
            packed.Unpack(msg)
            found.append(msg)
    assert len(found) == 1, (kind.DESCRIPTOR.name, status)
    return found[0]


@pytest.mark.parametrize(
    "call,request_,kind,name",
    [
        ("models.GetModel", mpb.GetModelRequest(model="no-such-model"), "model", "no-such-model"),
        ("models.DeleteModel", mpb.DeleteModelRequest(model="no-such-model"), "model", "no-such-model"),
        (
            "inference.Predict",
            ipb.PredictRequest(model="gone", inputs=[pb.SequenceInput(text="a")]),
            "model",
            "gone",
        ),
        ("training.GetJob", tpb.GetJobRequest(job_id="job-000000000000"), "job", "job-000000000000"),
    ],
)
def test_not_found_carries_resource_info(stubs, trained, call, request_, kind, name):
    service, method = call.split(".")
    err = call_error(getattr(getattr(stubs, service), method), request_)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    info = detail(err, error_details_pb2.ResourceInfo)
    assert (info.resource_type, info.resource_name) == (kind, name)
    assert info.description == err.details()


def test_resource_exhausted_carries_a_quota_failure_and_says_the_limit_once(stubs, served, trained):
    limit = served[0].state.config.max_new_tokens
    err = call_error(
        stubs.inference.StreamGenerate,
        ipb.StreamGenerateRequest(model="lm", prompt="a", max_new_tokens=limit + 5),
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.details().count(str(limit)) == 1 and err.details().count("max_new_tokens") == 2, err.details()
    violation = detail(err, error_details_pb2.QuotaFailure).violations[0]
    assert violation.subject == "max_new_tokens" and violation.quota_id == "max_new_tokens"
    assert violation.quota_value == limit and violation.description == err.details()

    batch = served[0].state.config.max_batch_size
    err = call_error(
        stubs.inference.Predict,
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="a")] * (batch + 1)),
    )
    violation = detail(err, error_details_pb2.QuotaFailure).violations[0]
    assert (violation.subject, violation.quota_id, violation.quota_value) == (
        "inputs",
        "max_batch_size",
        batch,
    )
