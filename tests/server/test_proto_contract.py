"""Contract tests: what the .proto comments promise, checked on every task the server trains."""

from __future__ import annotations

import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb

# name -> (inputs, the step count of each input as the proto defines it: tokens or vectors, no <bos>)
LENGTH_CASES = {
    "lm": (
        [pb.SequenceInput(text="the cat"), pb.SequenceInput(token_ids=pb.TokenIds(ids=[5, 6, 7]))],
        [7, 3],
    ),
    "clf": ([pb.SequenceInput(text="cat"), pb.SequenceInput(text="mug owl")], [3, 7]),
    "tagger": ([pb.SequenceInput(text="the cat sat"), pb.SequenceInput(text="a dog")], [3, 2]),
    "fc": (
        [pb.SequenceInput(values=pb.FloatSequence(data=[0.1 * t for t in range(n)])) for n in (7, 11)],
        [7, 11],
    ),
    "rev": ([pb.SequenceInput(text="abc"), pb.SequenceInput(text="ab")], [3, 2]),
    "namer": ([pb.SequenceInput(text="F")], [0]),
}


@pytest.mark.parametrize("name", sorted(LENGTH_CASES))
def test_predict_length_is_the_number_of_input_steps_for_every_task(stubs, trained, name):
    inputs, lengths = LENGTH_CASES[name]
    reply = stubs.inference.Predict(ipb.PredictRequest(model=name, inputs=inputs), timeout=60)
    assert [o.length for o in reply.outputs] == lengths


@pytest.mark.parametrize("name", ["lm", "clf", "tagger", "fc"])
def test_predict_stream_length_is_the_chunks_step_count(stubs, trained, name):
    inputs, lengths = LENGTH_CASES[name]

    def requests():
        for i, chunk in enumerate(inputs):
            yield ipb.PredictStreamRequest(model=name, sequence_id="s", start=i == 0, chunk=chunk)

    replies = list(stubs.inference.PredictStream(requests(), timeout=30))
    assert [r.output.length for r in replies] == lengths
    assert replies[-1].steps_seen == sum(lengths)


def _reflect_v1(channel, request: bytes):
    """One request on grpc.reflection.v1, encoded by hand from reflection.proto's field numbers."""
    from grpc_reflection.v1alpha import reflection_pb2  # v1 has the same messages and numbers

    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    return list(call(iter([request]), timeout=10))


def _string_field(number: int, value: str) -> bytes:
    data = value.encode()
    assert len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def test_reflection_v1_is_served_beside_v1alpha(stubs):
    from google.protobuf import descriptor_pb2

    replies = _reflect_v1(stubs.channel, _string_field(7, ""))  # list_services = 7
    names = {s.name for s in replies[0].list_services_response.service}
    assert {
        "rnn.v1.TrainingService",
        "rnn.v1.InferenceService",
        "rnn.v1.ModelService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    for symbol, package in (
        ("rnn.v1.InferenceService", "rnn.v1"),
        ("grpc.reflection.v1.ServerReflection", "grpc.reflection.v1"),
    ):
        reply = _reflect_v1(stubs.channel, _string_field(4, symbol))[0]  # file_containing_symbol = 4
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in reply.file_descriptor_response.file_descriptor_proto
        ]
        assert files and files[0].package == package, reply


def proto_comment(file: str, line_start: str) -> str:
    """The // comment block right above the line of proto/rnn/v1/<file> that starts with `line_start`."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / "proto" / "rnn" / "v1" / file).read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(line_start))
    block = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("//"):
            break
        block.insert(0, line.strip()[2:].strip())
    return " ".join(block)


def test_prompt_tokens_counts_the_bos_a_language_model_reads_as_documented(stubs, served, trained):
    from rnn_engine.checkpoint import load_model

    comment = proto_comment("inference_service.proto", "int32 prompt_tokens")
    assert "<bos>" in comment and '"the " with a char tokenizer gives 5' in comment
    tok = load_model(served[0].state.store.path("lm")).tokenizer
    for prompt in ("the ", "a", ""):
        request = ipb.StreamGenerateRequest(model="lm", prompt=prompt, max_new_tokens=2, temperature=0)
        summary = list(stubs.inference.StreamGenerate(request, timeout=30))[-1].summary
        assert summary.prompt_tokens == len(tok.encode(prompt)) + 1
    request = ipb.StreamGenerateRequest(model="rev", prompt="abc", max_new_tokens=2, temperature=0)
    assert list(stubs.inference.StreamGenerate(request, timeout=30))[-1].summary.prompt_tokens == 3


def test_predict_stream_refuses_a_bidirectional_model_as_documented(stubs, trained):
    import grpc

    from rnn.v1 import training_service_pb2 as tpb

    from .conftest import CLASSES, TRAINING, train

    assert "bidirectional model" in proto_comment("inference_service.proto", "rpc PredictStream")
    spec = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=6, embedding_dim=4, bidirectional=True)
    events = train(stubs, "bidi", pb.TASK_CLASSIFICATION, spec, tpb.DatasetSource(text=CLASSES), TRAINING)
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED
    request = ipb.PredictStreamRequest(
        model="bidi", sequence_id="s", start=True, chunk=pb.SequenceInput(text="cat")
    )
    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.PredictStream(iter([request]), timeout=30))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "bidirectional" in err.value.details()


@pytest.mark.parametrize("name", ["lm", "clf"])
def test_job_events_say_what_they_are_and_the_last_carries_the_final_metrics(stubs, trained, name):
    from rnn.v1 import model_service_pb2 as mpb
    from rnn.v1 import training_service_pb2 as tpb

    events = trained[name]
    steps = [e for e in events if e.kind == tpb.JOB_EVENT_KIND_PROGRESS]
    evals = [e for e in events if e.kind == tpb.JOB_EVENT_KIND_EVALUATION]
    completed = [e for e in events if e.kind == tpb.JOB_EVENT_KIND_COMPLETED]
    assert steps and all(not e.metrics and not e.HasField("validation_loss") for e in steps)
    assert steps[-1].step == 12 and all(e.items_per_second > 0 for e in steps)
    assert evals and all(e.metrics and e.HasField("validation_loss") for e in evals)
    assert evals[-1].step == 12
    assert len(completed) == 1 and events[-2] is completed[0]
    done, final = completed[0], events[-1]
    assert final.kind == tpb.JOB_EVENT_KIND_STATE and final.state == pb.JOB_STATE_SUCCEEDED
    best = next(e for e in evals if e.step == done.best_step)  # the saved model is the best evaluation's
    assert dict(done.metrics) == dict(best.metrics)
    assert dict(final.metrics) == dict(done.metrics) and final.validation_loss == done.validation_loss
    assert final.loss == done.loss > 0 and final.epoch == done.epoch == evals[-1].epoch
    assert final.best_step == done.best_step and final.elapsed_seconds >= done.elapsed_seconds > 0
    info = stubs.models.GetModel(mpb.GetModelRequest(model=name)).model
    assert {k: info.metrics[k] for k in done.metrics} == dict(done.metrics)


def test_model_spec_forget_bias_and_the_rmsprop_optimizer_reach_the_engine(stubs, served):
    from rnn.v1 import model_service_pb2 as mpb
    from rnn.v1 import training_service_pb2 as tpb
    from rnn_engine.checkpoint import load_model

    from .conftest import LM_TEXT, train

    spec = pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=6, embedding_dim=4, forget_bias=1.0)
    training = pb.TrainingSettings(
        max_steps=3, batch_size=4, seq_len=8, optimizer="rmsprop", learning_rate=0.002
    )
    events = train(stubs, "fb", pb.TASK_LANGUAGE_MODEL, spec, tpb.DatasetSource(text=LM_TEXT), training)
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1]
    info = stubs.models.GetModel(mpb.GetModelRequest(model="fb")).model
    assert info.spec.forget_bias == 1.0 and info.training.optimizer == "rmsprop"
    model = load_model(served[0].state.store.path("fb"))
    assert model.config.forget_bias == 1.0 and model.training["train_config"]["optimizer"] == "rmsprop"


def test_predict_log_likelihood_scores_every_token_as_the_engine_does(stubs, served, trained):
    import math

    from rnn_engine.checkpoint import load_model

    texts = ["the cat", "a dog sat on"]
    request = ipb.PredictRequest(
        model="lm", inputs=[pb.SequenceInput(text=t) for t in texts], output=pb.OUTPUT_KIND_LOG_LIKELIHOOD
    )
    reply = stubs.inference.Predict(request, timeout=30)
    expected = load_model(served[0].state.store.path("lm")).score(texts)
    for out, exp, text in zip(reply.outputs, expected, texts, strict=True):
        assert out.length == len(text) == len(out.steps)
        assert [s.log_probability for s in out.steps] == pytest.approx(exp["log_probs"], abs=1e-12)
        assert out.log_likelihood == pytest.approx(sum(s.log_probability for s in out.steps), abs=1e-9)
        assert out.perplexity == pytest.approx(math.exp(-out.log_likelihood / out.length), rel=1e-9)
        assert not any(s.top_k or s.distribution for s in out.steps)


def test_log_likelihood_is_refused_where_it_means_nothing(stubs, trained):
    import grpc

    for request_model in ("clf", "fc"):
        inputs = (
            [pb.SequenceInput(text="cat")]
            if request_model == "clf"
            else [pb.SequenceInput(values=pb.FloatSequence(data=[0.1] * 8))]
        )
        request = ipb.PredictRequest(model=request_model, inputs=inputs, output=pb.OUTPUT_KIND_LOG_LIKELIHOOD)
        with pytest.raises(grpc.RpcError) as err:
            stubs.inference.Predict(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "output" in err.value.details()
    stream = ipb.PredictStreamRequest(
        model="lm",
        sequence_id="s",
        start=True,
        chunk=pb.SequenceInput(text="a"),
        output=pb.OUTPUT_KIND_LOG_LIKELIHOOD,
    )
    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.PredictStream(iter([stream]), timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "PredictStream" in err.value.details()


def test_time_budget_ends_a_job_succeeded_with_the_best_model(stubs, served):
    from rnn.v1 import model_service_pb2 as mpb
    from rnn.v1 import training_service_pb2 as tpb

    from .conftest import LM_TEXT, train

    spec = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=6, embedding_dim=4)
    training = pb.TrainingSettings(max_steps=10**7, batch_size=4, seq_len=8, time_budget_seconds=1.0)
    events = train(stubs, "budget", pb.TASK_LANGUAGE_MODEL, spec, tpb.DatasetSource(text=LM_TEXT), training)
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1]
    assert events[-1].step < 10**7 and events[-1].metrics["perplexity"] > 0
    info = stubs.models.GetModel(mpb.GetModelRequest(model="budget")).model
    assert info.details["training"]["stopped"] == "time_budget"
    assert info.training.time_budget_seconds == 1.0
