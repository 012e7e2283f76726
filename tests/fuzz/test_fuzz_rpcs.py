"""Hypothesis-generated requests for every RPC against a real server: never UNKNOWN/INTERNAL, always serving.

Default run: FUZZ_EXAMPLES examples per RPC (a few hundred in all, well under 30 s). Long mode: set
RNN_FUZZ_EXAMPLES=<n per RPC>, or run the `slow` test, which gives every RPC LONG_EXAMPLES (thousands in all).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from tests.security.helpers import Stubs, save_tiny_models, start_server

from .strategies import requests

FUZZ_EXAMPLES = int(os.environ.get("RNN_FUZZ_EXAMPLES", "40"))
LONG_EXAMPLES = 300
# Codes that mean the server failed rather than refused: a bug in its validation, a crash, or a stuck call.
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
         grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNIMPLEMENTED}
SERVER_LIMITS = dict(max_message_bytes=256 * 1024, max_sequence_length=200, max_batch_size=16,
                     max_new_tokens=64, max_training_jobs=1, max_queued_jobs=2, max_model_parameters=100_000,
                     max_upload_bytes=64 * 1024, max_upload_disk_bytes=4 * 1024 * 1024)


class _Unexpected(logging.Handler):
    """Collects the server's 'unexpected error' log records (each one is an INTERNAL answer or a crash)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    save_tiny_models(root)
    handler = _Unexpected()
    logging.getLogger("rnn").addHandler(handler)
    server, port = start_server(root, **SERVER_LIMITS)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel), handler
    for job in Stubs(channel).training.ListJobs(tpb.ListJobsRequest(), timeout=10).jobs:
        Stubs(channel).training.CancelJob(tpb.CancelJobRequest(job_id=job.job_id), timeout=10)
    channel.close()
    server.drain(3)
    logging.getLogger("rnn").removeHandler(handler)


def _stream_of(cls: type) -> st.SearchStrategy:
    """Request streams: empty, a few messages, or long ones."""
    return st.one_of(st.lists(requests(cls), max_size=6), st.lists(requests(cls), min_size=30, max_size=60))


def _consume(result) -> None:
    if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
        for _ in result:
            pass


# method -> (strategy, call(stubs, request) returning a response or a response iterator, timeout ok?)
CASES: dict[str, tuple[st.SearchStrategy, Callable, bool]] = {
    "Predict": (requests(ipb.PredictRequest), lambda s, r: s.inference.Predict(r, timeout=20), False),
    "PredictStream": (_stream_of(ipb.PredictStreamRequest),
                      lambda s, r: s.inference.PredictStream(iter(r), timeout=20), False),
    "StreamGenerate": (requests(ipb.StreamGenerateRequest),
                       lambda s, r: s.inference.StreamGenerate(r, timeout=20), False),
    "ListModels": (requests(mpb.ListModelsRequest), lambda s, r: s.models.ListModels(r, timeout=20), False),
    "GetModel": (requests(mpb.GetModelRequest), lambda s, r: s.models.GetModel(r, timeout=20), False),
    "DeleteModel": (requests(mpb.DeleteModelRequest).filter(lambda r: r.model not in ("lm", "clf", "fc")),
                    lambda s, r: s.models.DeleteModel(r, timeout=20), False),
    "ExportOnnx": (requests(mpb.ExportOnnxRequest), lambda s, r: s.models.ExportOnnx(r, timeout=30), False),
    "Train": (requests(tpb.TrainRequest), lambda s, r: s.training.Train(r, timeout=3), True),
    "WatchJob": (requests(tpb.WatchJobRequest), lambda s, r: s.training.WatchJob(r, timeout=3), True),
    "GetJob": (requests(tpb.GetJobRequest), lambda s, r: s.training.GetJob(r, timeout=20), False),
    "ListJobs": (requests(tpb.ListJobsRequest), lambda s, r: s.training.ListJobs(r, timeout=20), False),
    "CancelJob": (requests(tpb.CancelJobRequest), lambda s, r: s.training.CancelJob(r, timeout=20), False),
    "UploadDataset": (_stream_of(tpb.UploadDatasetRequest),
                      lambda s, r: s.training.UploadDataset(iter(r), timeout=20), False),
}


def _check(stubs: Stubs, method: str, request) -> None:
    _, call, may_time_out = CASES[method]
    try:
        _consume(call(stubs, request))
    except grpc.RpcError as exc:
        code = exc.code()
        shown = f"{request!r:.1500}"
        assert code not in NEVER, f"{method} answered {code.name}: {exc.details()}\nrequest: {shown}"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            assert may_time_out, f"{method} hung: {request!r:.2000}"


def _assert_serving(stubs: Stubs, unexpected: _Unexpected) -> None:
    health = health_pb2_grpc.HealthStub(stubs.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reply = stubs.inference.Predict(ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the cat")]),
                                    timeout=10)
    assert reply.outputs[0].length == 7
    assert [m.name for m in stubs.models.ListModels(mpb.ListModelsRequest(), timeout=10).models] == \
        ["clf", "fc", "lm"]
    assert not unexpected.records, [r.getMessage() for r in unexpected.records]


def _run(fuzzed, method: str, examples: int) -> None:
    stubs, unexpected = fuzzed
    strategy = CASES[method][0]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=examples <= FUZZ_EXAMPLES,
              suppress_health_check=list(HealthCheck))
    @given(request=strategy)
    def property_(request):
        _check(stubs, method, request)

    property_()
    _assert_serving(stubs, unexpected)


@pytest.mark.parametrize("method", sorted(CASES))
def test_fuzzed_requests_never_break_the_server(fuzzed, method):
    _run(fuzzed, method, FUZZ_EXAMPLES)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fuzzed_requests_never_break_the_server_long(fuzzed):
    for method in sorted(CASES):
        _run(fuzzed, method, LONG_EXAMPLES)


@pytest.mark.parametrize("method", sorted(CASES))
def test_an_oversized_message_is_refused_for_every_rpc(fuzzed, method):
    """A request just over max_message_bytes: RESOURCE_EXHAUSTED, then the server still serves."""
    stubs, unexpected = fuzzed
    big = "x" * (SERVER_LIMITS["max_message_bytes"] + 10)
    cls = {"PredictStream": ipb.PredictStreamRequest, "UploadDataset": tpb.UploadDatasetRequest}.get(method)
    if cls is ipb.PredictStreamRequest:
        request = [ipb.PredictStreamRequest(model="lm", sequence_id=big)]
    elif cls is tpb.UploadDatasetRequest:
        request = [tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="d")),
                   tpb.UploadDatasetRequest(chunk=big.encode())]
    else:
        request_class = {"Predict": ipb.PredictRequest, "StreamGenerate": ipb.StreamGenerateRequest,
                         "ListModels": mpb.ListModelsRequest, "GetModel": mpb.GetModelRequest,
                         "DeleteModel": mpb.DeleteModelRequest, "ExportOnnx": mpb.ExportOnnxRequest,
                         "Train": tpb.TrainRequest, "WatchJob": tpb.WatchJobRequest,
                         "GetJob": tpb.GetJobRequest, "ListJobs": tpb.ListJobsRequest,
                         "CancelJob": tpb.CancelJobRequest}[method]
        field = next(f.name for f in request_class.DESCRIPTOR.fields if f.type == f.TYPE_STRING)
        request = request_class(**{field: big})
    with pytest.raises(grpc.RpcError) as err:
        _consume(CASES[method][1](stubs, request))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_serving(stubs, unexpected)
