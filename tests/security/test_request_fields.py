"""Request fields that used to reach a handler as a type error (INTERNAL) or hold memory: each is now
INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for a size) naming the field, and ended sequences leave nothing."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from server.wire import MAX_NAME_CHARS, MAX_STOP_CHARS

from .helpers import SERIES, Stubs, save_tiny_models, start_server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fields")
    save_tiny_models(root, ("lm",))
    server, port = start_server(root, max_model_parameters=100_000)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel), server
    channel.close()
    server.drain(2)


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


@pytest.mark.parametrize("digits", [19, 4301, 5000])
def test_a_long_page_token_is_invalid_argument(served, digits):
    stubs, _ = served
    for call in (lambda: stubs.models.ListModels(mpb.ListModelsRequest(page_token="9" * digits), timeout=10),
                 lambda: stubs.training.ListJobs(tpb.ListJobsRequest(page_token="9" * digits), timeout=10)):
        code, details = refusal(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("page_token:")


def test_the_pager_refuses_a_token_int_would_refuse():
    from server.errors import ServiceError
    from server.servicers.paging import page

    with pytest.raises(ServiceError, match="page_token"):
        page(list(range(10)), 5, "1" * 5000)  # int() raises ValueError past 4300 digits
    assert page(list(range(10)), 5, "5") == ([5, 6, 7, 8, 9], "")


@pytest.mark.parametrize("value", [5, -1, 1.5, True, None, {"a": 1}, [1, 2], ["ok", 3]])
def test_forecasting_exog_columns_of_the_wrong_type_are_invalid_argument(served, value):
    stubs, _ = served
    options = struct_pb2.Struct()
    options.update({"exog_columns": value})
    request = tpb.TrainRequest(model="fc2", task=pb.TASK_FORECASTING,
                               spec=pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=4, extra={"window": 4}),
                               training=pb.TrainingSettings(max_steps=1, batch_size=2),
                               dataset=tpb.DatasetSource(text=SERIES, options=options))
    code, details = refusal(lambda: list(stubs.training.Train(request, timeout=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith("dataset.options.exog_columns:"), details


@pytest.mark.parametrize("option,value", [("header", "yes"), ("column", 3), ("fmt", 1)])
def test_other_dataset_options_of_the_wrong_type_are_invalid_argument(served, option, value):
    stubs, _ = served
    options = struct_pb2.Struct()
    options.update({option: value})
    request = tpb.TrainRequest(model="x", task=pb.TASK_LANGUAGE_MODEL, spec=pb.ModelSpec(hidden_size=4),
                               dataset=tpb.DatasetSource(text="the cat sat", options=options))
    code, details = refusal(lambda: list(stubs.training.Train(request, timeout=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"dataset.options.{option}:"), details


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layers", [20_000_000, 2**31 - 1])
def test_a_model_of_billions_of_layers_is_refused_without_looping_over_them(served, layers):
    stubs, _ = served
    request = tpb.TrainRequest(model="huge", task=pb.TASK_LANGUAGE_MODEL,
                               spec=pb.ModelSpec(hidden_size=8, embedding_dim=4, num_layers=layers),
                               dataset=tpb.DatasetSource(text="the cat sat on the mat"))
    code, details = refusal(lambda: list(stubs.training.Train(request, timeout=30)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_model_parameters" in details


@pytest.mark.parametrize("layers", [1, 2, 3, 7])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("task", ["language_model", "forecasting"])
def test_the_closed_form_estimate_equals_the_per_layer_sum(layers, bidirectional, task):
    from server.limits import ASSUMED_VOCAB, GATES, estimated_parameters

    cfg = dict(hidden_size=6, num_layers=layers, embedding_dim=5, bidirectional=bidirectional, cell="gru",
               task=task)
    dirs, gates = 2 if bidirectional else 1, GATES["gru"]
    width = 1 if task == "forecasting" else 5
    total = 0 if task == "forecasting" else ASSUMED_VOCAB * width
    for _ in range(layers):
        total += dirs * gates * 6 * (width + 6 + 2)
        width = dirs * 6
    assert estimated_parameters(cfg) == total + (width + 1) * ASSUMED_VOCAB


FIELDS = [
    ("sequence_id", lambda s, v: list(s.inference.PredictStream(iter([ipb.PredictStreamRequest(
        model="lm", sequence_id=v, start=True, chunk=pb.SequenceInput(text="t"))]), timeout=10))),
    ("model", lambda s, v: s.inference.Predict(ipb.PredictRequest(model=v), timeout=10)),
    ("job_id", lambda s, v: s.training.GetJob(tpb.GetJobRequest(job_id=v), timeout=10)),
    ("label", lambda s, v: list(s.inference.StreamGenerate(ipb.StreamGenerateRequest(model="lm", label=v),
                                                           timeout=10))),
    ("dataset.dataset_id", lambda s, v: list(s.training.Train(tpb.TrainRequest(
        model="m", task=pb.TASK_LANGUAGE_MODEL, dataset=tpb.DatasetSource(dataset_id=v)), timeout=10))),
    ("info.name", lambda s, v: s.training.UploadDataset(iter([tpb.UploadDatasetRequest(
        info=tpb.DatasetInfo(name=v))]), timeout=10)),
]


@pytest.mark.parametrize("field,call", FIELDS, ids=[f for f, _ in FIELDS])
def test_every_id_and_name_has_a_length_limit(served, field, call):
    stubs, _ = served
    code, details = refusal(lambda: call(stubs, "x" * (MAX_NAME_CHARS + 1)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"{field}: expected at most {MAX_NAME_CHARS} characters"), details


def test_a_stop_sequence_has_a_length_limit(served):
    stubs, _ = served
    stops = ["ok", "x" * (MAX_STOP_CHARS + 1)]
    request = ipb.StreamGenerateRequest(model="lm", prompt="t", stop_sequences=stops)
    code, details = refusal(lambda: list(stubs.inference.StreamGenerate(request, timeout=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("stop_sequences[1]:"), details


def test_ended_sequences_leave_nothing_behind():
    from server.sequences import SequenceRegistry

    registry = SequenceRegistry(idle_timeout=60, max_open=10)
    try:
        for i in range(200):
            registry.open(1, f"seq-{i}", "lm", None, None)
            registry.release(1, f"seq-{i}")
        assert len(registry) == 0
        assert registry._released == {}
    finally:
        registry.close()


def test_an_ended_sequence_is_reported_as_not_open(served):
    stubs, _ = served
    chunk = pb.SequenceInput(text="t")
    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.PredictStream(iter([
            ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True, end=True, chunk=chunk),
            ipb.PredictStreamRequest(sequence_id="a", chunk=chunk)]), timeout=10))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "it ended" in err.value.details()
