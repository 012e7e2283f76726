"""Server test fixtures: an in-process server on 127.0.0.1:0 and tiny models trained once per session.

`trained` trains one small model per supported task through the Train RPC (so every test also exercises the
worker process path); the datasets are synthetic and tiny, training takes a few steps.
"""

from __future__ import annotations

import json
import math
import threading

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import training_service_pb2 as tpb
from server import ServerConfig, create_server

from .helpers import Stubs

LM_TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog. " * 12
CLASSES = "\n".join(
    f"{w}\t{'animal' if i % 2 == 0 else 'thing'}"
    for i, w in enumerate(
        ["cat", "cup", "dog", "pen", "cow", "box", "pig", "mug", "owl", "hat", "eel", "car", "ant", "bag"] * 3
    )
)
TAGGED = "\n".join(
    json.dumps({"tokens": t.split(), "tags": g.split()})
    for t, g in [
        ("the cat sat", "DET NOUN VERB"),
        ("a dog ran", "DET NOUN VERB"),
        ("the owl flew", "DET NOUN VERB"),
        ("a cow sat", "DET NOUN VERB"),
        ("the pig ran", "DET NOUN VERB"),
        ("a cat flew", "DET NOUN VERB"),
    ]
    * 3
)
SERIES = "t,value\n" + "\n".join(f"{t},{math.sin(t / 3) + 0.1 * (t % 5):.4f}" for t in range(80))

NAMES = "\n".join(
    f"{n}\t{g}"
    for n, g in [
        ("anna", "F"),
        ("maria", "F"),
        ("julia", "F"),
        ("emma", "F"),
        ("john", "M"),
        ("peter", "M"),
        ("paul", "M"),
        ("tom", "M"),
    ]
    * 2
)
REVERSED = "\n".join(f"{w}\t{w[::-1]}" for w in ["abc", "cab", "bca", "aab", "bba", "cca", "abb", "cab"] * 2)
SMALL = dict(hidden_size=12, embedding_dim=8)
TRAINING = pb.TrainingSettings(max_steps=12, batch_size=4, seq_len=16, seed=3)
# name -> (task, spec, dataset)
MODELS = {
    "lm": (
        pb.TASK_LANGUAGE_MODEL,
        pb.ModelSpec(cell=pb.CELL_TYPE_GRU, **SMALL),
        tpb.DatasetSource(text=LM_TEXT),
    ),
    "clf": (
        pb.TASK_CLASSIFICATION,
        pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, **SMALL),
        tpb.DatasetSource(text=CLASSES),
    ),
    "tagger": (
        pb.TASK_TAGGING,
        pb.ModelSpec(cell=pb.CELL_TYPE_RNN, tokenizer="word", **SMALL),
        tpb.DatasetSource(text=TAGGED),
    ),
    "fc": (
        pb.TASK_FORECASTING,
        pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=8, extra={"window": 6}),
        tpb.DatasetSource(text=SERIES),
    ),
    "namer": (
        pb.TASK_ONE_TO_MANY,
        pb.ModelSpec(cell=pb.CELL_TYPE_GRU, **SMALL),
        tpb.DatasetSource(text=NAMES),
    ),
    "rev": (pb.TASK_SEQ2SEQ, pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, **SMALL), tpb.DatasetSource(text=REVERSED)),
}


def start_server(model_dir, **overrides):
    config = ServerConfig(port=0, model_dir=model_dir, metrics_port=0, **overrides)
    server, port = create_server(config)
    server.start()
    return server, port


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """(server, port) of the session's server, with max_training_jobs=2 so the fixtures train in parallel."""
    server, port = start_server(
        tmp_path_factory.mktemp("models"), max_training_jobs=2, max_concurrent_streams=48, max_batch_size=32
    )
    yield server, port
    server.drain(2)


@pytest.fixture(scope="session")
def stubs(served):
    channel = grpc.insecure_channel(f"127.0.0.1:{served[1]}")
    yield Stubs(channel)
    channel.close()


def train(stubs: Stubs, name: str, task, spec, dataset, training=TRAINING) -> list:
    """Run Train to the end; returns the events."""
    request = tpb.TrainRequest(
        model=name, task=task, spec=spec, training=training, dataset=dataset, overwrite=True
    )
    return [r.event for r in stubs.training.Train(request, timeout=120)]


@pytest.fixture(scope="session")
def trained(stubs):
    """The tiny trained models ("lm", "clf", "tagger", "fc", "namer", "rev") -> their Train events."""
    results, errors = {}, []

    def run(name):
        try:
            results[name] = train(stubs, name, *MODELS[name])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((name, exc))

    threads = [threading.Thread(target=run, args=(n,)) for n in MODELS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name, events in results.items():
        assert events[-1].state == pb.JOB_STATE_SUCCEEDED, (name, events[-1])
    return results


@pytest.fixture
def make_server(tmp_path):
    """Factory for extra servers (own model dir by default); all are drained at the end of the test."""
    made = []

    def make(model_dir=None, **overrides):
        server, port = start_server(model_dir or tmp_path / f"models{len(made)}", **overrides)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        made.append((server, channel))
        return server, Stubs(channel)

    yield make
    for server, channel in made:
        channel.close()
        server.drain(1)
