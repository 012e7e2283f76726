"""Train tiny models of every task through the server; Predict, PredictStream, StreamGenerate, ExportOnnx."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb

TEXT_INPUTS = {
    "lm": ["the cat", "a dog sat on"],
    "clf": ["cat", "mug", "owl"],
    "tagger": ["the cat sat", "a dog"],
}


def text_inputs(name):
    return [pb.SequenceInput(text=t) for t in TEXT_INPUTS[name]]


def engine_model(served, name):
    from rnn_engine.checkpoint import load_model

    server, _ = served
    return load_model(server.state.store.path(name))


def test_training_streams_progress_and_ends_succeeded(trained):
    events = trained["lm"]
    states = [e.state for e in events if e.kind == tpb.JOB_EVENT_KIND_STATE]
    assert states[:2] == [pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING] and states[-1] == pb.JOB_STATE_SUCCEEDED
    steps = [e.step for e in events if e.kind == tpb.JOB_EVENT_KIND_PROGRESS]
    assert max(steps) == 12 and all(
        e.total_steps == 12 for e in events if e.kind == tpb.JOB_EVENT_KIND_PROGRESS
    )
    assert [e.sequence for e in events] == list(range(len(events)))
    assert any(e.loss > 0 for e in events)


@pytest.mark.parametrize("name", ["lm", "clf", "tagger"])
def test_predict_matches_the_engine_on_the_saved_model(stubs, served, trained, name):
    reply = stubs.inference.Predict(ipb.PredictRequest(model=name, inputs=text_inputs(name), top_k=2))
    expected = engine_model(served, name).predict(TEXT_INPUTS[name], top_k=2)
    assert len(reply.outputs) == len(expected)
    for out, exp in zip(reply.outputs, expected, strict=True):
        if name == "lm":
            assert [[s.id for s in step.top_k] for step in out.steps] == [t["ids"] for t in exp["top_tokens"]]
            got = [s.probability for step in out.steps for s in step.top_k]
            assert got == pytest.approx([p for t in exp["top_tokens"] for p in t["probs"]], abs=1e-12)
        elif name == "clf":
            assert len(out.steps) == 1
            assert [s.label for s in out.steps[0].top_k] == exp["labels"]
            assert [s.probability for s in out.steps[0].top_k] == pytest.approx(exp["probs"], abs=1e-12)
        else:
            assert [step.top_k[0].label for step in out.steps] == exp["tags"]
            assert list(out.tokens) == exp["tokens"]


def test_predict_forecast_returns_one_value_per_series(stubs, served, trained):
    series = [[0.1 * t for t in range(10)], [1.0, 0.5, 0.2, -0.3, -0.5, -0.6, -0.2]]
    reply = stubs.inference.Predict(
        ipb.PredictRequest(
            model="fc", inputs=[pb.SequenceInput(values=pb.FloatSequence(data=s)) for s in series]
        )
    )
    expected = engine_model(served, "fc").predict(series)
    assert [list(o.steps[0].values) for o in reply.outputs] == [pytest.approx(e["values"]) for e in expected]


def test_distribution_output_is_a_full_probability_vector(stubs, trained):
    reply = stubs.inference.Predict(
        ipb.PredictRequest(model="clf", inputs=text_inputs("clf"), output=pb.OUTPUT_KIND_DISTRIBUTION)
    )
    for out in reply.outputs:
        dist = list(out.steps[0].distribution)
        assert len(dist) == 2 and sum(dist) == pytest.approx(1.0)
    top = stubs.inference.Predict(ipb.PredictRequest(model="clf", inputs=text_inputs("clf"), top_k=2))
    for out, t in zip(reply.outputs, top.outputs, strict=True):
        for s in t.steps[0].top_k:
            assert out.steps[0].distribution[s.id] == pytest.approx(s.probability)


def test_token_ids_give_the_same_prediction_as_text(stubs, served, trained):
    tok = engine_model(served, "lm").tokenizer
    ids = tok.encode("the cat")
    by_text = stubs.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the cat")])
    )
    by_ids = stubs.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(token_ids=pb.TokenIds(ids=ids))])
    )
    assert by_ids == by_text


def _stream(stubs, model, chunks, seq_id="s1", **kw):
    def requests():
        for i, chunk in enumerate(chunks):
            yield ipb.PredictStreamRequest(
                model=model if i == 0 else "",
                sequence_id=seq_id,
                start=i == 0,
                end=i == len(chunks) - 1,
                chunk=chunk,
                **kw,
            )

    return list(stubs.inference.PredictStream(requests(), timeout=30))


@pytest.mark.parametrize(
    "name,chunks",
    [("lm", ["the c", "at sat", " on"]), ("tagger", ["the cat", "sat"]), ("clf", ["c", "a", "t"])],
)
def test_stream_in_chunks_equals_one_predict(stubs, trained, name, chunks):
    replies = _stream(stubs, name, [pb.SequenceInput(text=c) for c in chunks], top_k=2)
    whole = stubs.inference.Predict(
        ipb.PredictRequest(
            model=name,
            inputs=[pb.SequenceInput(text="".join(chunks) if name != "tagger" else " ".join(chunks))],
            top_k=2,
        )
    ).outputs[0]
    assert [r.sequence_id for r in replies] == ["s1"] * len(chunks) and replies[-1].ended
    if name == "clf":  # many-to-one: the answer after the last chunk is the whole sequence's answer
        got, want = replies[-1].output.steps[0].top_k, whole.steps[0].top_k
        assert [s.label for s in got] == [s.label for s in want]
        assert [s.probability for s in got] == pytest.approx([s.probability for s in want], abs=1e-6)
        return
    steps = [s for r in replies for s in r.output.steps]
    assert len(steps) == len(whole.steps)
    for got, want in zip(steps, whole.steps, strict=True):
        assert [s.id for s in got.top_k] == [s.id for s in want.top_k]
        assert [s.probability for s in got.top_k] == pytest.approx(
            [s.probability for s in want.top_k], abs=1e-6
        )
    assert replies[-1].steps_seen == len(whole.steps)


def test_stream_forecast_chunks_equal_one_predict(stubs, trained):
    series = [0.3, 0.1, -0.2, 0.4, 0.5, 0.6, 0.2, 0.0, -0.1]
    replies = _stream(
        stubs,
        "fc",
        [pb.SequenceInput(values=pb.FloatSequence(data=series[i : i + 3])) for i in range(0, 9, 3)],
    )
    whole = stubs.inference.Predict(
        ipb.PredictRequest(model="fc", inputs=[pb.SequenceInput(values=pb.FloatSequence(data=series))])
    )
    assert list(replies[-1].output.steps[0].values) == pytest.approx(list(whole.outputs[0].steps[0].values))


def test_generate_streams_tokens_then_a_summary(stubs, trained):
    request = ipb.StreamGenerateRequest(model="lm", prompt="the ", max_new_tokens=8, temperature=0.8, seed=5)
    replies = list(stubs.inference.StreamGenerate(request, timeout=30))
    tokens, summary = replies[:-1], replies[-1].summary
    assert (
        all(r.WhichOneof("event") == "token" for r in tokens) and replies[-1].WhichOneof("event") == "summary"
    )
    assert summary.generated_tokens == len(tokens) <= 8
    assert "".join(r.token.text for r in tokens) == summary.text
    assert [r.token.index for r in tokens] == list(range(len(tokens)))
    assert all(r.token.log_probability <= 0 for r in tokens)
    if len(tokens) == 8:
        assert summary.finish_reason == ipb.FINISH_REASON_LENGTH
    again = list(stubs.inference.StreamGenerate(request, timeout=30))
    assert again == replies  # same seed, same tokens


def test_generate_stops_at_a_stop_sequence(stubs, trained):
    greedy = list(
        stubs.inference.StreamGenerate(
            ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=20, temperature=0.0)
        )
    )
    text = greedy[-1].summary.text
    assert len(text) >= 3
    stop = text[1:3]
    stopped = list(
        stubs.inference.StreamGenerate(
            ipb.StreamGenerateRequest(
                model="lm", prompt="the", max_new_tokens=20, temperature=0.0, stop_sequences=[stop]
            )
        )
    )
    summary = stopped[-1].summary
    assert summary.finish_reason == ipb.FINISH_REASON_STOP_SEQUENCE and summary.stop_sequence == stop
    assert summary.text.endswith(stop) and text.startswith(summary.text)


@pytest.mark.parametrize("name", ["lm", "clf", "tagger", "fc"])
def test_export_onnx_streams_a_valid_model(stubs, trained, name):
    onnx = pytest.importorskip("onnx")
    replies = list(stubs.models.ExportOnnx(mpb.ExportOnnxRequest(model=name, chunk_size=4096), timeout=60))
    data = b"".join(r.chunk for r in replies)
    assert [r.offset for r in replies] == list(range(0, len(data), 4096))
    assert len(data) == replies[0].total_bytes and hashlib.sha256(data).hexdigest() == replies[0].sha256
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)


def test_exported_language_model_matches_predict_in_onnxruntime(stubs, served, trained):
    ort = pytest.importorskip("onnxruntime")
    np = pytest.importorskip("numpy")
    data = b"".join(r.chunk for r in stubs.models.ExportOnnx(mpb.ExportOnnxRequest(model="clf")))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    tok = engine_model(served, "clf").tokenizer
    ids = tok.encode("cat")
    feeds = {
        i.name: v
        for i, v in zip(
            session.get_inputs(),
            [np.array([ids], dtype=np.int64), np.array([len(ids)], dtype=np.int64)],
            strict=True,
        )
    }
    names = [o.name for o in session.get_outputs()]
    probs = session.run(None, feeds)[names.index("probabilities")][0]
    reply = stubs.inference.Predict(
        ipb.PredictRequest(
            model="clf", inputs=[pb.SequenceInput(text="cat")], output=pb.OUTPUT_KIND_DISTRIBUTION
        )
    )
    assert list(reply.outputs[0].steps[0].distribution) == pytest.approx(probs.tolist(), abs=1e-5)


def test_models_are_listed_and_described(stubs, trained):
    listed = stubs.models.ListModels(mpb.ListModelsRequest())
    assert {"lm", "clf", "tagger", "fc"} <= {m.name for m in listed.models}
    info = stubs.models.GetModel(mpb.GetModelRequest(model="clf")).model
    assert info.task == pb.TASK_CLASSIFICATION and list(info.labels) == ["animal", "thing"]
    assert info.spec.cell == pb.CELL_TYPE_LSTM and info.spec.hidden_size == 12 and info.vocab_size > 4
    assert info.parameter_count > 0 and info.created.seconds > 0 and info.job_id.startswith("job-")
    assert info.training.max_steps == 12
    only_fc = stubs.models.ListModels(mpb.ListModelsRequest(task=pb.TASK_FORECASTING)).models
    assert [m.name for m in only_fc] == ["fc"]


def test_get_job_and_list_jobs_report_the_finished_jobs(stubs, trained):
    job_id = trained["clf"][-1].job_id
    job = stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id)).job
    assert job.model == "clf" and job.state == pb.JOB_STATE_SUCCEEDED and job.step == 12
    assert job.finished.seconds >= job.started.seconds >= job.created.seconds > 0
    assert job.event_count == len(trained["clf"])
    jobs = stubs.training.ListJobs(tpb.ListJobsRequest(model="clf")).jobs
    assert job_id in [j.job_id for j in jobs]
    replay = [r.event for r in stubs.training.WatchJob(tpb.WatchJobRequest(job_id=job_id, from_sequence=2))]
    assert replay == trained["clf"][2:]


def test_generating_from_a_classifier_is_a_failed_precondition(stubs, trained):
    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(model="clf", prompt="x")))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("name,source", [("namer", "F"), ("rev", "abc")])
def test_decoder_models_predict_the_greedy_text_that_generate_streams(stubs, served, trained, name, source):
    reply = stubs.inference.Predict(ipb.PredictRequest(model=name, inputs=[pb.SequenceInput(text=source)]))
    expected = engine_model(served, name).predict([source])[0]
    out = reply.outputs[0]
    assert out.text == expected["text"] and list(out.token_ids) == expected["tokens"]
    request = ipb.StreamGenerateRequest(model=name, temperature=0.0, max_new_tokens=200)
    if name == "namer":
        request.label = source
    else:
        request.prompt = source
    replies = list(stubs.inference.StreamGenerate(request, timeout=30))
    assert replies[-1].summary.text == out.text
    assert [r.token.id for r in replies[:-1]] == list(out.token_ids)


@pytest.mark.parametrize(
    "name,graphs",
    [
        ("namer", [mpb.ONNX_GRAPH_ENCODER, mpb.ONNX_GRAPH_DECODER_STEP]),
        ("rev", [mpb.ONNX_GRAPH_ENCODER, mpb.ONNX_GRAPH_DECODER_STEP]),
        ("lm", [mpb.ONNX_GRAPH_FULL, mpb.ONNX_GRAPH_STEP]),
    ],
)
def test_export_each_graph_of_a_model_kind(stubs, trained, name, graphs):
    onnx = pytest.importorskip("onnx")
    for graph in graphs:
        data = b"".join(
            r.chunk for r in stubs.models.ExportOnnx(mpb.ExportOnnxRequest(model=name, graph=graph))
        )
        onnx.checker.check_model(onnx.load_from_string(data))


def test_streaming_a_seq2seq_model_is_a_failed_precondition(stubs, trained):
    requests = iter(
        [
            ipb.PredictStreamRequest(
                model="rev", sequence_id="a", start=True, chunk=pb.SequenceInput(text="abc")
            )
        ]
    )
    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.PredictStream(requests))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_forecaster_generates_a_rollout_of_values(stubs, served, trained):
    series = [0.1 * t for t in range(12)]
    request = ipb.StreamGenerateRequest(
        model="fc", prompt_values=pb.FloatSequence(data=series), max_new_tokens=5
    )
    replies = list(stubs.inference.StreamGenerate(request, timeout=30))
    values = [r.token.value for r in replies[:-1]]
    assert values == pytest.approx(engine_model(served, "fc").forecast(series, 5))
    assert replies[-1].summary.generated_tokens == 5 and replies[-1].summary.prompt_tokens == 12
    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(model="fc", prompt="1 2 3")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "prompt" in err.value.details()


def test_forecaster_with_an_exogenous_series_takes_rows_of_features(stubs, served, trained):
    import math

    rows = "\n".join(f"{t},{math.sin(t / 4):.4f},{math.cos(t / 4):.4f}" for t in range(60))
    dataset = tpb.DatasetSource(text="date,value,x\n" + rows, options={"exog_columns": ["x"]})
    request = tpb.TrainRequest(
        model="fc2",
        task=pb.TASK_FORECASTING,
        dataset=dataset,
        overwrite=True,
        spec=pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, extra={"window": 5}),
        training=pb.TrainingSettings(max_steps=3, batch_size=4),
    )
    events = [r.event for r in stubs.training.Train(request, timeout=60)]
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED
    series = [[0.1 * t, 0.5 - 0.05 * t] for t in range(8)]
    flat = [v for row in series for v in row]
    reply = stubs.inference.Predict(
        ipb.PredictRequest(
            model="fc2", inputs=[pb.SequenceInput(values=pb.FloatSequence(data=flat, feature_size=2))]
        )
    )
    expected = engine_model(served, "fc2").predict([series])[0]["values"]
    assert list(reply.outputs[0].steps[0].values) == pytest.approx(expected)
    info = stubs.models.GetModel(mpb.GetModelRequest(model="fc2")).model
    assert info.input_size == 2
