"""Batching through the real server: concurrent streams equal lone ones, cancellation, full queue, metrics."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn_engine.checkpoint import save_model
from rnn_engine.config import GenerationConfig, ModelConfig
from rnn_engine.generate import GeneratedToken
from rnn_engine.model import Model
from rnn_engine.tokenizers import CharTokenizer

from .helpers import details

TEXT = "the quick brown fox jumps over the lazy dog. THE END!\n"
SETTINGS = [dict(temperature=1.0, seed=1), dict(temperature=0.0), dict(temperature=0.7, top_k=5, seed=2),
            dict(top_p=0.9, seed=3), dict(repetition_penalty=1.4, seed=4), dict(temperature=1.5, seed=5),
            dict(top_k=3, top_p=0.8, seed=6), dict(temperature=0.5, seed=7), dict(seed=8)]


@pytest.fixture
def lm_server(make_server, tmp_path):
    """A server with a saved random-weight char LSTM called "lm"; returns (model, stubs, server)."""
    model = Model(ModelConfig(hidden_size=40, num_layers=2, embedding_dim=12, seed=4),
                  tokenizer=CharTokenizer.fit([TEXT]))
    save_model(model, tmp_path / "models" / "lm")

    def make(**overrides):
        server, stubs = make_server(tmp_path / "models", **overrides)
        return model, stubs, server
    return make


def generate(stubs, prompt: str, **settings) -> list[int]:
    request = ipb.StreamGenerateRequest(model="lm", prompt=prompt, max_new_tokens=25, **settings)
    return [r.token.id for r in stubs.inference.StreamGenerate(request, timeout=30) if r.HasField("token")]


def engine_ids(model, prompt: str, **settings) -> list[int]:
    cfg = GenerationConfig(max_new_tokens=25, **settings)
    return [r.id for r in model.generate(prompt, cfg) if isinstance(r, GeneratedToken)]


def test_concurrent_streams_get_the_tokens_they_get_alone(lm_server):
    model, stubs, server = lm_server()
    prompts = ["the ", "", "qu", "dog", "fox", "T", "lazy", "b", "over "]
    alone = [generate(stubs, p, **s) for p, s in zip(prompts, SETTINGS, strict=True)]
    together: list = [None] * len(prompts)
    barrier = threading.Barrier(len(prompts))

    def run(i):
        barrier.wait()
        together[i] = generate(stubs, prompts[i], **SETTINGS[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == alone
    assert alone == [engine_ids(model, p, **s) for p, s in zip(prompts, SETTINGS, strict=True)]
    text = server.state.metrics.text()
    assert "rnn_batch_size_count" in text and "rnn_batch_queue_seconds" in text


def test_cancelling_one_stream_leaves_the_others_whole(lm_server):
    model, stubs, _ = lm_server()
    calls = [stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(
        model="lm", prompt="the", max_new_tokens=200, seed=i), timeout=30) for i in range(4)]
    next(calls[1])
    calls[1].cancel()
    with pytest.raises(grpc.RpcError) as err:
        list(calls[1])
    assert err.value.code() == grpc.StatusCode.CANCELLED
    for i in (0, 2, 3):
        got = [r.token.id for r in calls[i] if r.HasField("token")]
        assert got == [r.id for r in model.generate("the", GenerationConfig(max_new_tokens=200, seed=i))
                       if isinstance(r, GeneratedToken)]


def test_predict_past_the_queue_depth_is_resource_exhausted_at_once(lm_server):
    _, stubs, server = lm_server(batch_window_ms=1000, queue_depth=1)
    request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the")])
    first = stubs.inference.Predict.future(request, timeout=30)
    gauge = 'rnn_batch_queue_depth{kind="predict",model="lm"} 1.0'
    end = time.monotonic() + 5
    while gauge not in server.state.metrics.text():
        assert time.monotonic() < end
        time.sleep(0.005)
    with pytest.raises(grpc.RpcError) as err:  # not queued behind the first: refused
        stubs.inference.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue_depth" in err.value.details() and details(err.value)["limit"] == "queue_depth"
    assert len(first.result().outputs) == 1


def test_batching_off_gives_the_same_results(lm_server):
    model, stubs, _ = lm_server(batching=False)
    assert generate(stubs, "fox", **SETTINGS[2]) == engine_ids(model, "fox", **SETTINGS[2])
    reply = stubs.inference.Predict(ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the dog")]))
    assert len(reply.outputs[0].steps) == len("the dog")


def test_retrained_model_serves_new_calls_while_a_running_stream_finishes_on_the_old(lm_server, tmp_path):
    old_model, stubs, server = lm_server(model_cache_size=2)
    assert server.state.store.cache_size == 2 and server.state.batching.max_models == 2
    request = ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=1000, seed=9)
    running = stubs.inference.StreamGenerate(request, timeout=180)
    first = next(running)  # started on the old weights (the pool-level test pins it mid-way; here it may end)
    new_model = Model(ModelConfig(hidden_size=40, num_layers=2, embedding_dim=12, seed=77),
                      tokenizer=CharTokenizer.fit([TEXT]))
    save_model(new_model, tmp_path / "models" / "lm")  # what a finished retraining job does
    cfg = GenerationConfig(max_new_tokens=1000, seed=9)
    assert generate(stubs, "the", seed=9) == engine_ids(new_model, "the", seed=9)
    rest = [r.token.id for r in running if r.HasField("token")]
    want = [r.id for r in old_model.generate("the", cfg) if isinstance(r, GeneratedToken)]
    assert [first.token.id, *rest] == want
    stubs.models.DeleteModel(mpb.DeleteModelRequest(model="lm"), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        generate(stubs, "the")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
