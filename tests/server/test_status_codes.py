"""One test per status-code mapping: engine errors and server conditions become the documented gRPC codes."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from rnn_engine import errors as engine_errors
from server.errors import classify

from .conftest import LM_TEXT, MODELS, TRAINING
from .helpers import details, eventually, trailing


def call_error(fn, *args, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        result = fn(*args, **kw)
        if hasattr(result, "__iter__") and not hasattr(result, "SerializeToString"):
            list(result)
    return err.value


@pytest.mark.parametrize(
    "exc,code",
    [
        (engine_errors.InvalidInput("x: bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (engine_errors.NotFound("gone"), grpc.StatusCode.NOT_FOUND),
        (engine_errors.AlreadyExists("twice"), grpc.StatusCode.ALREADY_EXISTS),
        (engine_errors.FailedPrecondition("state"), grpc.StatusCode.FAILED_PRECONDITION),
        (engine_errors.NotTrained("untrained"), grpc.StatusCode.FAILED_PRECONDITION),
        (engine_errors.IncompatibleModel("format"), grpc.StatusCode.FAILED_PRECONDITION),
        (engine_errors.Cancelled("stop"), grpc.StatusCode.CANCELLED),
    ],
)
def test_each_engine_error_class_maps_to_its_status_code(exc, code):
    assert classify(exc).code == code
    assert classify(RuntimeError("boom")) is None  # unexpected -> INTERNAL


def test_invalid_argument_names_the_field(stubs, trained):
    err = call_error(stubs.inference.Predict, ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput()]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(err)["fields"] == ["inputs[0]"] and "inputs[0]" in err.details()


def test_not_found(stubs, trained):
    err = call_error(stubs.models.GetModel, mpb.GetModelRequest(model="no-such-model"))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "no-such-model" in err.details()
    err = call_error(stubs.training.GetJob, tpb.GetJobRequest(job_id="job-000000000000"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_already_exists_without_overwrite(stubs, trained):
    task, spec, dataset = MODELS["lm"]
    request = tpb.TrainRequest(model="lm", task=task, spec=spec, training=TRAINING, dataset=dataset)
    err = call_error(stubs.training.Train, request)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "overwrite" in err.details()


def test_failed_precondition_for_generating_from_a_tagger(stubs, trained):
    err = call_error(stubs.inference.StreamGenerate, ipb.StreamGenerateRequest(model="tagger", prompt="a"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_resource_exhausted_names_the_limit(stubs, trained):
    inputs = [pb.SequenceInput(text="cat")] * 33  # the session server allows 32
    err = call_error(stubs.inference.Predict, ipb.PredictRequest(model="clf", inputs=inputs))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_batch_size" in err.details() and details(err)["limit"] == "max_batch_size"
    err = call_error(
        stubs.inference.StreamGenerate,
        ipb.StreamGenerateRequest(model="lm", prompt="a", max_new_tokens=10**6),
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and details(err)["limit"] == "max_new_tokens"


def test_too_many_streams_is_resource_exhausted(make_server, trained, served):
    server, stubs = make_server(model_dir=served[0].state.config.model_dir, max_concurrent_streams=1)
    release = threading.Event()

    def slow():
        yield ipb.PredictStreamRequest(
            model="lm", sequence_id="a", start=True, chunk=pb.SequenceInput(text="a")
        )
        release.wait(10)

    first = stubs.inference.PredictStream(slow())
    next(first)  # the first stream is open
    err = call_error(stubs.inference.StreamGenerate, ipb.StreamGenerateRequest(model="lm", prompt="a"))
    release.set()
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_concurrent_streams" in err.details()


def test_client_cancellation_is_cancelled_and_stops_generation(stubs, served, trained):
    tokens = served[0].state.metrics.tokens.labels("lm")
    call = stubs.inference.StreamGenerate(
        ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=4000, temperature=0.0)
    )
    next(call)
    call.cancel()
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    time.sleep(0.3)
    before = tokens._value.get()
    time.sleep(0.3)
    assert tokens._value.get() == before < 4000  # generation stopped promptly on the server


def test_deadline_exceeded_stops_generation(stubs, served, trained):
    tokens = served[0].state.metrics.tokens.labels("lm")
    start = tokens._value.get()
    request = ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=4000, temperature=0.0)
    err = call_error(stubs.inference.StreamGenerate, request, timeout=0.1)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    metrics = served[0].state.metrics
    counted = 'rnn_grpc_calls_total{method="StreamGenerate",status="DEADLINE_EXCEEDED"}'
    assert eventually(lambda: counted in metrics.text())
    # Generation stops: the token counter settles (a step already running may still finish) far short of
    # the 4000 asked for, and stays put. Polled rather than timed, so a loaded machine cannot fail it.
    samples = [tokens._value.get()]

    def settled():
        time.sleep(0.3)
        samples.append(tokens._value.get())
        return samples[-1] == samples[-2]

    assert eventually(settled, timeout=15.0), f"tokens kept coming after the deadline: {samples}"
    assert samples[-1] - start < 4000
    time.sleep(0.5)
    assert tokens._value.get() == samples[-1]


def test_unexpected_error_is_internal_with_a_request_id_and_the_server_keeps_serving(
    stubs, served, trained, monkeypatch, caplog
):
    model = served[0].state.store.get("clf")
    monkeypatch.setattr(model, "predict", lambda *a, **k: 1 / 0)
    err = call_error(
        stubs.inference.Predict, ipb.PredictRequest(model="clf", inputs=[pb.SequenceInput(text="a")])
    )
    assert err.code() == grpc.StatusCode.INTERNAL
    rid = trailing(err, "request-id")
    assert rid and rid in err.details() and details(err)["request_id"] == rid
    assert "ZeroDivisionError" not in err.details()  # the traceback stays in the server log
    monkeypatch.undo()
    ok = stubs.inference.Predict(ipb.PredictRequest(model="clf", inputs=[pb.SequenceInput(text="a")]))
    assert len(ok.outputs) == 1


def test_draining_server_is_unavailable_and_not_serving(make_server, trained, served):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server, stubs = make_server(model_dir=served[0].state.config.model_dir)
    health = health_pb2_grpc.HealthStub(stubs.channel)
    stream = stubs.inference.StreamGenerate(
        ipb.StreamGenerateRequest(model="lm", prompt="t", max_new_tokens=1000, temperature=0.0)
    )
    next(stream)
    server.state.draining.set()  # what drain() does first
    server.loop.run(server.health.enter_graceful_shutdown())
    err = call_error(stubs.models.ListModels, mpb.ListModelsRequest())
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    status = health.Check(health_pb2.HealthCheckRequest(service="rnn.v1.InferenceService")).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    rest = list(stream)  # the in-flight call still completes within the grace period
    assert rest[-1].WhichOneof("event") == "summary"


def test_ids_of_every_error_are_returned_in_metadata(stubs, trained):
    err = call_error(stubs.models.GetModel, mpb.GetModelRequest(model="missing"))
    assert trailing(err, "request-id") == details(err)["request_id"]
    call = stubs.models.GetModel.with_call(
        mpb.GetModelRequest(model="lm"), metadata=[("x-request-id", "abc-123")]
    )
    assert dict(call[1].initial_metadata())["request-id"] == "abc-123"


def test_train_language_model_text_dataset_is_accepted(stubs):
    # sanity for the table below: a good Train request for a fresh name succeeds
    task, spec, _ = MODELS["lm"]
    events = list(
        stubs.training.Train(
            tpb.TrainRequest(
                model="lm-sanity",
                task=task,
                spec=spec,
                training=pb.TrainingSettings(max_steps=2, batch_size=2, seq_len=8),
                dataset=tpb.DatasetSource(text=LM_TEXT),
                overwrite=True,
            ),
            timeout=60,
        )
    )
    assert events[-1].event.state == pb.JOB_STATE_SUCCEEDED


def test_drain_lets_in_flight_streams_finish_within_the_grace_period(make_server, trained, served):
    server, stubs = make_server(model_dir=served[0].state.config.model_dir)
    request = ipb.StreamGenerateRequest(model="lm", prompt="t", max_new_tokens=300, temperature=0.0)
    stream = stubs.inference.StreamGenerate(request, timeout=30)
    first = next(stream)
    drainer = threading.Thread(target=server.drain, args=(5,))
    drainer.start()
    rest = [first, *stream]
    drainer.join(10)
    assert rest[-1].WhichOneof("event") == "summary" and rest[-1].summary.generated_tokens == 300
    with pytest.raises(grpc.RpcError) as err:
        stubs.models.ListModels(mpb.ListModelsRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
