"""Every server limit refuses the request that exceeds it, naming the limit, and the server keeps serving."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import training_service_pb2 as tpb

from .helpers import (
    ADMIN_TOKEN,
    INFER_TOKEN,
    LM_TEXT,
    RPCS,
    Stubs,
    bearer,
    save_tiny_models,
    start_server,
    status_of,
    write_tokens,
)

LIMITS = dict(max_message_bytes=65536, max_sequence_length=50, max_batch_size=4, max_new_tokens=20,
              max_model_parameters=20_000, max_upload_bytes=1000, max_upload_disk_bytes=2600)
TINY = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, embedding_dim=4)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    save_tiny_models(root)
    server, port = start_server(root, **LIMITS)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel), root
    channel.close()
    server.drain(1)


def _text(n: int) -> pb.SequenceInput:
    return pb.SequenceInput(text=("the cat " * n)[:n])


def _train(**fields) -> tpb.TrainRequest:
    dataset, training = tpb.DatasetSource(text=LM_TEXT), pb.TrainingSettings(batch_size=2, seq_len=8)
    request = dict(model="big", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, dataset=dataset, training=training)
    return tpb.TrainRequest(**{**request, **fields})


def _upload(stubs: Stubs, data: bytes, size: int = 0):
    parts = [tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="d", size_bytes=size))]
    parts += [tpb.UploadDatasetRequest(chunk=data[i:i + 300]) for i in range(0, len(data), 300)]
    return stubs.training.UploadDataset(iter(parts), timeout=10)


def _stream(stubs: Stubs, *chunks: pb.SequenceInput):
    msgs = [ipb.PredictStreamRequest(model="lm", sequence_id="s", start=i == 0, chunk=c)
            for i, c in enumerate(chunks)]
    return list(stubs.inference.PredictStream(iter(msgs), timeout=10))


REFUSED: dict[str, tuple[str, Callable[[Stubs], object]]] = {
    "message-size": ("max", lambda s: s.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[_text(70_000)]), timeout=10)),
    "predict-batch": ("max_batch_size", lambda s: s.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[_text(3)] * 5), timeout=10)),
    "predict-text-length": ("max_sequence_length", lambda s: s.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[_text(51)]), timeout=10)),
    "predict-token-ids": ("max_sequence_length", lambda s: s.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(token_ids=pb.TokenIds(ids=[5] * 51))]),
        timeout=10)),
    "predict-values": ("max_sequence_length", lambda s: s.inference.Predict(
        ipb.PredictRequest(model="fc", inputs=[pb.SequenceInput(values=pb.FloatSequence(data=[0.5] * 51))]),
        timeout=10)),
    "stream-total-length": ("max_sequence_length", lambda s: _stream(s, _text(30), _text(30))),
    "generate-tokens": ("max_new_tokens", lambda s: list(s.inference.StreamGenerate(
        ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=21), timeout=10))),
    "generate-prompt": ("max_sequence_length", lambda s: list(s.inference.StreamGenerate(
        ipb.StreamGenerateRequest(model="lm", prompt="the cat " * 10, max_new_tokens=2), timeout=10))),
    "generate-stop-sequences": ("max_stop_sequences", lambda s: list(s.inference.StreamGenerate(
        ipb.StreamGenerateRequest(model="lm", prompt="t", stop_sequences=["x"] * 33), timeout=10))),
    "train-model-size": ("max_model_parameters", lambda s: list(s.training.Train(
        _train(spec=pb.ModelSpec(hidden_size=64)), timeout=10))),
    "train-batch-size": ("max_batch_size", lambda s: list(s.training.Train(
        _train(training=pb.TrainingSettings(batch_size=5)), timeout=10))),
    "train-seq-len": ("max_sequence_length", lambda s: list(s.training.Train(
        _train(training=pb.TrainingSettings(batch_size=2, seq_len=51)), timeout=10))),
    "train-inline-dataset": ("max_upload_bytes", lambda s: list(s.training.Train(
        _train(dataset=tpb.DatasetSource(text="a" * 1001)), timeout=10))),
    "upload-size": ("max_upload_bytes", lambda s: _upload(s, b"b" * 1001)),
    "upload-announced-size": ("max_upload_bytes", lambda s: _upload(s, b"b", size=5000)),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_request_over_a_limit_is_refused_naming_it(limited, case):
    stubs, _ = limited
    limit, call = REFUSED[case]
    with pytest.raises(grpc.RpcError) as err:
        call(stubs)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
    assert limit in err.value.details()
    if limit != "max":  # gRPC itself words the message-size refusal ("... larger than max (N vs. 65536)")
        assert f"server limit {limit}" in err.value.details()
    predict = next(r for r in RPCS if r.method.endswith("/Predict"))
    assert status_of(predict, stubs, None) == grpc.StatusCode.OK  # and the server still serves


def test_requests_at_the_limits_are_served(limited):
    stubs, _ = limited
    reply = stubs.inference.Predict(ipb.PredictRequest(model="lm", inputs=[_text(50)] * 4), timeout=10)
    assert [o.length for o in reply.outputs] == [50] * 4
    tokens = list(stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(
        model="lm", prompt="t", max_new_tokens=20, temperature=0.0), timeout=10))
    assert tokens[-1].summary.generated_tokens <= 20


def test_uploads_stop_at_the_disk_quota_which_survives_a_restart(limited):
    stubs, root = limited
    _upload(stubs, b"1" * 1000)
    _upload(stubs, b"2" * 1000)
    with pytest.raises(grpc.RpcError) as err:
        _upload(stubs, b"3" * 1000)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_upload_disk_bytes" in err.value.details()
    assert not list((root / ".uploads").glob(".part-*"))  # the refused upload left nothing behind
    server, port = start_server(root, **LIMITS)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as err:
            _upload(Stubs(channel), b"4" * 1000)
        assert "max_upload_disk_bytes" in err.value.details()
    finally:
        server.drain(0.5)


def _retry(make, attempts: int = 40):
    """`make()`, retried while the server has not yet seen a closed stream end (its callback is async)."""
    for _ in range(attempts - 1):
        try:
            return make()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(0.05)
    return make()


class _OpenStream:
    """A PredictStream held open: it sent one message and got its answer."""

    def __init__(self, stubs: Stubs, token: str | None) -> None:
        self.requests: queue.Queue = queue.Queue()
        self.requests.put(ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True))
        self.call = stubs.inference.PredictStream(iter(self.requests.get, None), metadata=bearer(token),
                                                  timeout=30)
        next(self.call)

    def close(self) -> None:
        self.requests.put(None)
        list(self.call)


def test_streams_are_limited_per_client_and_in_total(tmp_path):
    save_tiny_models(tmp_path, ("lm",))
    server, port = start_server(tmp_path, auth_tokens_file=write_tokens(tmp_path / "tokens"),
                                max_concurrent_streams=3, max_streams_per_client=2)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stubs, opened = Stubs(channel), []
    try:
        opened += [_OpenStream(stubs, ADMIN_TOKEN), _OpenStream(stubs, ADMIN_TOKEN)]
        with pytest.raises(grpc.RpcError) as err:
            _OpenStream(stubs, ADMIN_TOKEN)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_client" in err.value.details()
        opened.append(_OpenStream(stubs, INFER_TOKEN))  # another client still gets the last slot
        with pytest.raises(grpc.RpcError) as err:
            _OpenStream(stubs, INFER_TOKEN)
        assert "max_concurrent_streams" in err.value.details()
        opened.pop(0).close()
        opened.append(_retry(lambda: _OpenStream(stubs, ADMIN_TOKEN)))  # a closed stream frees its slot
    finally:
        for stream in opened:
            stream.close()
        channel.close()
        server.drain(1)


def test_training_jobs_are_limited_to_the_running_and_queued_slots(tmp_path):
    server, port = start_server(tmp_path, max_training_jobs=1, max_queued_jobs=1)
    calls = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stubs = Stubs(channel)
            long_run = pb.TrainingSettings(max_steps=1_000_000, batch_size=2, seq_len=8)
            for name in ("first", "second"):
                calls.append(stubs.training.Train(_train(model=name, training=long_run), timeout=60))
                first_event = next(calls[-1]).event
                assert first_event.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
            with pytest.raises(grpc.RpcError) as err:
                list(stubs.training.Train(_train(model="third", training=long_run), timeout=10))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_queued_jobs" in err.value.details()
            for job in stubs.training.ListJobs(tpb.ListJobsRequest(), timeout=10).jobs:
                stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job.job_id), timeout=10)
    finally:
        for call in calls:
            call.cancel()
        server.drain(5)


SHAPES = [("language_model", 1, False), ("language_model", 3, False), ("classification", 2, True),
          ("forecasting", 2, False)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("task,layers,bidirectional", SHAPES)
def test_the_parameter_estimate_never_undercounts_a_real_model(cell, task, layers, bidirectional):
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import ByteTokenizer
    from server.limits import estimated_parameters

    config = ModelConfig(task=task, cell=cell, hidden_size=24, num_layers=layers, embedding_dim=10,
                         bidirectional=bidirectional)
    norm = {"mean": [0.0], "std": [1.0]}
    extra = {"tokenizer": ByteTokenizer()} if task != "forecasting" else {"norm": norm}
    if task == "classification":
        extra["labels"] = ["a", "b", "c"]
    model = Model(config, **extra)
    actual = sum(p.size for p in model.params.values())
    estimate = estimated_parameters(config.to_dict())
    assert actual <= estimate <= 3 * actual + 2 * 1024 * 25  # never under, and not absurdly over


def test_cancelled_and_timed_out_streams_give_their_slots_back(tmp_path):
    """50 streams cut off by the client (cancel or deadline) in mid-flight leak no slot and no sequence."""
    save_tiny_models(tmp_path, ("lm",))
    server, port = start_server(tmp_path, max_concurrent_streams=3, max_open_sequences=3)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stubs, opened, done = Stubs(channel), [], threading.Event()

    def hanging():  # one start message, then nothing until the test ends
        yield ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True)
        done.wait(30)

    try:
        for i in range(50):
            if i % 3 == 0:
                call = stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(
                    model="lm", prompt="the", max_new_tokens=20), timeout=10)
                next(call)
                call.cancel()
            elif i % 3 == 1:
                _OpenStream(stubs, None).call.cancel()
            else:
                with pytest.raises(grpc.RpcError) as err:
                    list(stubs.inference.PredictStream(hanging(), timeout=0.15))
                assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        opened = [_retry(lambda: _OpenStream(stubs, None)) for _ in range(3)]  # every slot came back
    finally:
        done.set()
        for stream in opened:
            stream.close()
        channel.close()
        server.drain(1)
