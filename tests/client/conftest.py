"""Client test fixtures: a real in-process server on 127.0.0.1:0 and a tiny language model trained once."""

from __future__ import annotations

import json
import math

import pytest

from client import RnnClient

LM_TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog. " * 12
CLASSES = "\n".join(f"{w}\t{'animal' if i % 2 == 0 else 'thing'}" for i, w in enumerate(
    ["cat", "cup", "dog", "pen", "cow", "box", "pig", "mug", "owl", "hat", "eel", "car", "ant", "bag"] * 3))
TINY = dict(hidden_size=12, embedding_dim=8, max_steps=12, batch_size=4, seq_len=16, seed=3)


@pytest.fixture(scope="session")
def server_address(tmp_path_factory):
    """Address of a real server (models in a temp dir, no metrics endpoint), drained after the session."""
    server_mod = pytest.importorskip("server", reason="the server package is needed for end-to-end tests")
    config = server_mod.ServerConfig(port=0, model_dir=tmp_path_factory.mktemp("client-models"),
                                     metrics_port=0, max_training_jobs=2)
    server, port = server_mod.create_server(config)
    server.start()
    yield f"127.0.0.1:{port}"
    server.drain(2)


@pytest.fixture(scope="session")
def client(server_address):
    with RnnClient(server_address, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def lm(client) -> str:
    """Name of a tiny GRU character language model trained through RnnClient.train."""
    events = list(client.train("tiny-lm", text=LM_TEXT, cell="gru", overwrite=True, **TINY))
    assert events[-1].is_final and events[-1].state == "succeeded", events[-1]
    return "tiny-lm"


@pytest.fixture(scope="session")
def classifier(client) -> str:
    """Name of a tiny LSTM classifier (animal/thing) trained through RnnClient.train."""
    events = list(client.train("tiny-clf", task="classification", text=CLASSES, data_format="tsv",
                               cell="lstm", overwrite=True, **TINY))
    assert events[-1].state == "succeeded", events[-1]
    return "tiny-clf"


TAGGED = "\n".join(json.dumps({"tokens": t.split(), "tags": g.split()}) for t, g in [
    ("the cat sat", "DET NOUN VERB"), ("a dog ran", "DET NOUN VERB"), ("the owl flew", "DET NOUN VERB")] * 6)
SERIES = "t,value\n" + "\n".join(f"{t},{math.sin(t / 3):.4f}" for t in range(80))


@pytest.fixture(scope="session")
def tagger(client) -> str:
    """Name of a tiny word-level RNN tagger (DET/NOUN/VERB) trained from JSONL."""
    events = list(client.train("tiny-tagger", task="tagging", text=TAGGED, data_format="jsonl", cell="rnn",
                               tokenizer="word", overwrite=True, **TINY))
    assert events[-1].state == "succeeded", events[-1]
    return "tiny-tagger"


@pytest.fixture(scope="session")
def forecaster(client) -> str:
    """Name of a tiny LSTM forecaster (window 6) trained on a sine series from CSV."""
    tiny = {k: v for k, v in TINY.items() if k not in ("embedding_dim", "seq_len")}
    events = list(client.train("tiny-fc", task="forecasting", text=SERIES, data_format="csv", cell="lstm",
                               model_options={"window": 6}, overwrite=True, **tiny))
    assert events[-1].state == "succeeded", events[-1]
    return "tiny-fc"


NAMES = "\n".join(f"{n}\t{lang}" for n, lang in [
    ("Khoury", "Arabic"), ("Nahas", "Arabic"), ("Hanania", "Arabic"),
    ("Abe", "Japanese"), ("Abukara", "Japanese"), ("Ando", "Japanese")] * 4)


@pytest.fixture(scope="session")
def name_generator(client) -> str:
    """Name of a tiny one-to-many model generating names conditioned on a language label."""
    tiny = {k: v for k, v in TINY.items() if k != "seq_len"}
    events = list(client.train("tiny-names", task="one_to_many", text=NAMES, data_format="tsv", cell="gru",
                               overwrite=True, **tiny))
    assert events[-1].state == "succeeded", events[-1]
    return "tiny-names"
