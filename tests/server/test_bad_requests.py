"""A table of bad requests: every field of every request, missing, of the wrong kind, out of range,
unknown, too long or NaN, gets the right status code naming the field; a good request works after each."""

from __future__ import annotations

import math

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb

from .conftest import CLASSES, LM_TEXT, SERIES
from .helpers import details

INV, NF, RE = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED
FP = grpc.StatusCode.FAILED_PRECONDITION
NAN, INF = math.nan, math.inf


def text(t):
    return pb.SequenceInput(text=t)


def values(*v, features=0):
    return pb.SequenceInput(values=pb.FloatSequence(data=list(v), feature_size=features))


def predict(model="clf", inputs=None, **kw):
    inputs = [text("cat")] if inputs is None else list(inputs)
    return ("inference.Predict", ipb.PredictRequest(model=model, inputs=inputs, **kw))


def generate(**kw):
    return ("inference.StreamGenerate", ipb.StreamGenerateRequest(**{"model": "lm", "prompt": "the", **kw}))


def stream(*requests):
    return ("inference.PredictStream", list(requests))


def chunk(**kw):
    return ipb.PredictStreamRequest(**{"model": "lm", "sequence_id": "s", "start": True, **kw})


def train(**kw):
    base = dict(
        model="fresh",
        task=pb.TASK_CLASSIFICATION,
        training=pb.TrainingSettings(max_steps=1),
        dataset=tpb.DatasetSource(text=CLASSES),
    )
    base.update(kw)
    return ("training.Train", tpb.TrainRequest(**base))


def spec(**kw):
    return train(spec=pb.ModelSpec(**kw))


def settings(**kw):
    return train(training=pb.TrainingSettings(**kw))


def upload(*parts):
    return ("training.UploadDataset", list(parts))


INFO = tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="x"))
BYTES = tpb.UploadDatasetRequest(chunk=b"abc\tdef\n")

# (case id, (stub method, request), expected code, expected field or None)
CASES = [
    # Predict
    ("predict-model-missing", predict(model=""), INV, "model"),
    ("predict-model-malformed", predict(model="../etc"), INV, "model"),
    ("predict-model-unknown", predict(model="nope"), NF, None),
    ("predict-inputs-missing", predict(inputs=()), INV, "inputs"),
    ("predict-input-empty", predict(inputs=(text("cat"), pb.SequenceInput())), INV, "inputs[1]"),
    ("predict-text-empty", predict(inputs=(text(""),)), INV, "inputs[0].text"),
    ("predict-values-to-text-model", predict(inputs=(values(1.0),)), INV, "inputs[0].values"),
    ("predict-text-to-forecaster", predict(model="fc", inputs=(text("1"),)), INV, "inputs[0].text"),
    ("predict-nan", predict(model="fc", inputs=(values(1.0, 2.0, NAN),)), INV, "inputs[0].values.data[2]"),
    ("predict-inf", predict(model="fc", inputs=(values(INF),)), INV, "inputs[0].values.data[0]"),
    ("predict-values-empty", predict(model="fc", inputs=(values(),)), INV, "inputs[0].values.data"),
    (
        "predict-feature-size",
        predict(model="fc", inputs=(values(1.0, 2.0, features=2),)),
        INV,
        "inputs[0].values.feature_size",
    ),
    (
        "predict-token-id-range",
        predict(model="lm", inputs=(pb.SequenceInput(token_ids=pb.TokenIds(ids=[5, 99999])),)),
        INV,
        "inputs[0].token_ids.ids[1]",
    ),
    (
        "predict-token-id-special",
        predict(model="lm", inputs=(pb.SequenceInput(token_ids=pb.TokenIds(ids=[0])),)),
        INV,
        "inputs[0].token_ids.ids[0]",
    ),
    (
        "predict-token-ids-empty",
        predict(model="lm", inputs=(pb.SequenceInput(token_ids=pb.TokenIds()),)),
        INV,
        "inputs[0].token_ids.ids",
    ),
    ("predict-too-long", predict(inputs=(text("a" * 10001),)), RE, "inputs[0].text"),
    ("predict-batch-too-big", predict(inputs=[text("a")] * 33), RE, "inputs"),
    ("predict-top-k-negative", predict(top_k=-1), INV, "top_k"),
    ("predict-output-unknown", predict(output=99), INV, "output"),
    ("predict-output-values-for-labels", predict(output=pb.OUTPUT_KIND_VALUES), INV, "output"),
    (
        "predict-output-topk-for-forecaster",
        predict(model="fc", inputs=(values(1.0),), output=pb.OUTPUT_KIND_TOP_K),
        INV,
        "output",
    ),
    # PredictStream
    ("stream-sequence-id-missing", stream(chunk(sequence_id="", chunk=text("a"))), INV, "sequence_id"),
    ("stream-start-without-model", stream(chunk(model="", chunk=text("a"))), INV, "model"),
    ("stream-unknown-model", stream(chunk(model="nope", chunk=text("a"))), NF, None),
    ("stream-not-started", stream(chunk(start=False, chunk=text("a"))), NF, "sequence_id"),
    (
        "stream-after-end",
        stream(chunk(end=True, chunk=text("a")), chunk(start=False, model="", chunk=text("b"))),
        NF,
        "sequence_id",
    ),
    (
        "stream-other-model",
        stream(chunk(chunk=text("a")), chunk(start=False, model="clf", chunk=text("b"))),
        INV,
        "model",
    ),
    ("stream-values-to-lm", stream(chunk(chunk=values(1.0))), INV, "chunk.values"),
    ("stream-nan", stream(chunk(model="fc", chunk=values(NAN))), INV, "chunk.values.data[0]"),
    ("stream-too-long", stream(chunk(chunk=text("a" * 10001))), RE, "chunk.text"),
    (
        "stream-classifier-output-values",
        stream(chunk(model="clf", chunk=text("a"), output=pb.OUTPUT_KIND_VALUES)),
        INV,
        "output",
    ),
    # StreamGenerate
    ("generate-model-missing", generate(model=""), INV, "model"),
    ("generate-model-unknown", generate(model="nope"), NF, None),
    ("generate-from-classifier", generate(model="clf"), FP, None),
    ("generate-max-new-tokens-zero", generate(max_new_tokens=0), INV, "max_new_tokens"),
    ("generate-max-new-tokens-limit", generate(max_new_tokens=5000), RE, None),
    ("generate-temperature-negative", generate(temperature=-1.0), INV, "temperature"),
    ("generate-temperature-nan", generate(temperature=NAN), INV, "temperature"),
    ("generate-top-k-negative", generate(top_k=-2), INV, "top_k"),
    ("generate-top-p-zero", generate(top_p=0.0), INV, "top_p"),
    ("generate-top-p-above-one", generate(top_p=1.5), INV, "top_p"),
    ("generate-repetition-penalty-zero", generate(repetition_penalty=0.0), INV, "repetition_penalty"),
    ("generate-stop-empty", generate(stop_sequences=[""]), INV, "stop_sequences"),
    ("generate-values-to-lm", generate(prompt_values=pb.FloatSequence(data=[1.0])), INV, "prompt_values"),
    (
        "generate-values-nan",
        generate(model="fc", prompt="", prompt_values=pb.FloatSequence(data=[1.0, NAN])),
        INV,
        "prompt_values.data[1]",
    ),
    ("generate-label-unknown", generate(model="namer", label="X"), INV, "label"),
    ("generate-label-missing", generate(model="namer"), INV, "label"),
    (
        "predict-label-as-token-ids",
        predict(model="namer", inputs=(pb.SequenceInput(token_ids=pb.TokenIds(ids=[5])),)),
        INV,
        "inputs[0].token_ids",
    ),
    ("predict-source-too-long", predict(model="rev", inputs=(text("a" * 10001),)), RE, "inputs[0].text"),
    ("predict-label-unknown", predict(model="namer", inputs=(text("X"),)), INV, "inputs[0].text"),
    # Train
    ("train-model-missing", train(model=""), INV, "model"),
    ("train-model-malformed", train(model="a/b"), INV, "model"),
    ("train-task-missing", train(task=pb.TASK_UNSPECIFIED), INV, "task"),
    ("train-task-unknown", train(task=42), INV, "task"),
    ("train-hidden-size-zero", spec(hidden_size=0), INV, "spec.hidden_size"),
    ("train-num-layers-zero", spec(num_layers=0), INV, "spec.num_layers"),
    ("train-dropout-out-of-range", spec(dropout=1.5), INV, "spec.dropout"),
    ("train-dropout-nan", spec(dropout=NAN), INV, "spec.dropout"),
    ("train-cell-unknown", spec(cell=9), INV, "spec.cell"),
    ("train-tokenizer-unknown", spec(tokenizer="bpe"), INV, "spec.tokenizer"),
    (
        "train-nonlinearity-for-lstm",
        spec(cell=pb.CELL_TYPE_LSTM, nonlinearity="relu"),
        INV,
        "spec.nonlinearity",
    ),
    (
        "train-nonlinearity-unknown",
        spec(cell=pb.CELL_TYPE_RNN, nonlinearity="gelu"),
        INV,
        "spec.nonlinearity",
    ),
    ("train-extra-unknown", spec(extra={"bogus": 1}), INV, "spec.extra.bogus"),
    ("train-max-steps-negative", settings(max_steps=-1), INV, "training.max_steps"),
    ("train-batch-size-zero", settings(max_steps=1, batch_size=0), INV, "training.batch_size"),
    ("train-learning-rate-zero", settings(max_steps=1, learning_rate=0.0), INV, "training.learning_rate"),
    ("train-learning-rate-nan", settings(max_steps=1, learning_rate=NAN), INV, "training.learning_rate"),
    ("train-optimizer-unknown", settings(max_steps=1, optimizer="lion"), INV, "training.optimizer"),
    (
        "train-validation-fraction",
        settings(max_steps=1, validation_fraction=0.9),
        INV,
        "training.validation_fraction",
    ),
    ("train-seq-len-one", settings(max_steps=1, seq_len=1), INV, "training.seq_len"),
    ("train-training-extra-unknown", settings(max_steps=1, extra={"bogus": 1}), INV, "training.extra.bogus"),
    ("train-dataset-missing", train(dataset=tpb.DatasetSource()), INV, "dataset"),
    ("train-dataset-empty", train(dataset=tpb.DatasetSource(text="  ")), INV, "dataset.text"),
    (
        "train-dataset-format-unknown",
        train(dataset=tpb.DatasetSource(text=CLASSES, format=17)),
        INV,
        "dataset.format",
    ),
    (
        "train-dataset-id-malformed",
        train(dataset=tpb.DatasetSource(dataset_id="x")),
        INV,
        "dataset.dataset_id",
    ),
    ("train-dataset-id-unknown", train(dataset=tpb.DatasetSource(dataset_id="ds-" + "0" * 24)), NF, None),
    (
        "train-dataset-option-unknown",
        train(dataset=tpb.DatasetSource(text=CLASSES, options={"validation": "/etc"})),
        INV,
        "dataset.options.validation",
    ),
    (
        "train-dataset-unlabelled",
        train(dataset=tpb.DatasetSource(text="no tabs here\nnone here\n")),
        INV,
        "dataset",
    ),
    (
        "train-dataset-series-nan",
        train(
            task=pb.TASK_FORECASTING,
            dataset=tpb.DatasetSource(text=SERIES.replace("t,value", "date,value").replace("0.4272", "nan")),
        ),
        INV,
        "dataset",
    ),
    (
        "train-bidirectional-lm",
        train(
            task=pb.TASK_LANGUAGE_MODEL,
            spec=pb.ModelSpec(bidirectional=True),
            dataset=tpb.DatasetSource(text=LM_TEXT),
        ),
        INV,
        "spec.bidirectional",
    ),
    ("train-resume-malformed", train(resume_job_id="job-1"), INV, "resume_job_id"),
    ("train-resume-unknown", ("training.Train", tpb.TrainRequest(resume_job_id="job-" + "0" * 12)), NF, None),
    # Jobs
    ("watch-job-id-missing", ("training.WatchJob", tpb.WatchJobRequest()), INV, "job_id"),
    ("watch-job-unknown", ("training.WatchJob", tpb.WatchJobRequest(job_id="job-" + "a" * 12)), NF, None),
    (
        "watch-from-negative",
        ("training.WatchJob", tpb.WatchJobRequest(job_id="job-" + "a" * 12, from_sequence=-1)),
        INV,
        "from_sequence",
    ),
    ("get-job-malformed", ("training.GetJob", tpb.GetJobRequest(job_id="../x")), INV, "job_id"),
    ("cancel-job-missing", ("training.CancelJob", tpb.CancelJobRequest()), INV, "job_id"),
    ("cancel-job-unknown", ("training.CancelJob", tpb.CancelJobRequest(job_id="job-" + "b" * 12)), NF, None),
    ("list-jobs-state-unknown", ("training.ListJobs", tpb.ListJobsRequest(state=77)), INV, "state"),
    ("list-jobs-page-size", ("training.ListJobs", tpb.ListJobsRequest(page_size=5000)), INV, "page_size"),
    ("list-jobs-page-token", ("training.ListJobs", tpb.ListJobsRequest(page_token="zz")), INV, "page_token"),
    ("list-jobs-model-malformed", ("training.ListJobs", tpb.ListJobsRequest(model="a b")), INV, "model"),
    # UploadDataset
    ("upload-chunk-first", upload(BYTES), INV, "info"),
    ("upload-no-chunks", upload(INFO), INV, "chunk"),
    (
        "upload-size-negative",
        upload(tpb.UploadDatasetRequest(info=tpb.DatasetInfo(size_bytes=-1)), BYTES),
        INV,
        "info.size_bytes",
    ),
    (
        "upload-size-mismatch",
        upload(tpb.UploadDatasetRequest(info=tpb.DatasetInfo(size_bytes=3)), BYTES),
        INV,
        "info.size_bytes",
    ),
    ("upload-info-twice", upload(INFO, BYTES, INFO), INV, "chunk[2]"),
    # Models
    ("list-models-task-unknown", ("models.ListModels", mpb.ListModelsRequest(task=50)), INV, "task"),
    ("list-models-page-size", ("models.ListModels", mpb.ListModelsRequest(page_size=-1)), INV, "page_size"),
    (
        "list-models-page-token",
        ("models.ListModels", mpb.ListModelsRequest(page_token="-3")),
        INV,
        "page_token",
    ),
    ("get-model-missing", ("models.GetModel", mpb.GetModelRequest()), INV, "model"),
    ("get-model-unknown", ("models.GetModel", mpb.GetModelRequest(model="nope")), NF, None),
    ("delete-model-malformed", ("models.DeleteModel", mpb.DeleteModelRequest(model=".hidden")), INV, "model"),
    ("delete-model-unknown", ("models.DeleteModel", mpb.DeleteModelRequest(model="nope")), NF, None),
    ("export-model-missing", ("models.ExportOnnx", mpb.ExportOnnxRequest()), INV, "model"),
    (
        "export-graph-unknown",
        ("models.ExportOnnx", mpb.ExportOnnxRequest(model="clf", graph=12)),
        INV,
        "graph",
    ),
    (
        "export-graph-wrong-kind",
        ("models.ExportOnnx", mpb.ExportOnnxRequest(model="clf", graph=mpb.ONNX_GRAPH_STEP)),
        INV,
        "graph",
    ),
    (
        "export-chunk-size-negative",
        ("models.ExportOnnx", mpb.ExportOnnxRequest(model="clf", chunk_size=-5)),
        INV,
        "chunk_size",
    ),
]


def invoke(stubs, method: str, request):
    service, name = method.split(".")
    fn = getattr(getattr(stubs, service), name)
    arg = iter(request) if isinstance(request, list) else request
    result = fn(arg, timeout=30)
    if not hasattr(result, "SerializeToString"):
        return list(result)
    return result


@pytest.mark.parametrize("case,call,code,field", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_the_right_code_naming_the_field(stubs, trained, case, call, code, field):
    with pytest.raises(grpc.RpcError) as err:
        invoke(stubs, *call)
    assert err.value.code() == code, err.value.details()
    assert "/.jobs/" not in err.value.details()  # no server paths in messages
    if field is not None:
        assert details(err.value)["fields"] == [field], err.value.details()
        assert field in err.value.details()
    good = stubs.inference.Predict(ipb.PredictRequest(model="clf", inputs=[text("cat")]))
    assert len(good.outputs) == 1 and len(good.outputs[0].steps[0].top_k) == 1
