"""What an ONNX consumer reads from the file alone: the <bos> contract of a language model's full graph, and
the metadata read without onnx/onnxruntime (the dependency-free Node.js reader in examples/)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from rnn_engine.onnx_export import export_model, save_onnx
from tests.export.model_cases import make_model, session

ROOT = Path(__file__).resolve().parents[2]


def test_language_model_full_graph_states_what_to_feed_and_doing_so_gives_predict():
    model = make_model("language_model", "lstm")
    proto = export_model(model, "full")
    config = json.loads({p.key: p.value for p in proto.metadata_props}["rnn_config"])
    tokens_doc = next(i.doc_string for i in proto.graph.input if i.name == "tokens")
    assert (
        "<bos>" in tokens_doc and "<bos>" in config["inputs"]["tokens"] and config["prompt_prefix_in_tokens"]
    )
    assert "Predict" in config["outputs"]["probabilities"]
    vocab = [e["token"] for e in json.loads({p.key: p.value for p in proto.metadata_props}["vocab"])]
    text = "a cat"
    ids = config["prompt_prefix"] + [vocab.index(ch) for ch in text]  # exactly what the contract says
    probs = session(proto).run(
        ["probabilities"], {"tokens": np.array([ids]), "lengths": np.array([len(ids)])}
    )
    expected = model.predict([text], top_k=3)[0]["top_tokens"]
    for i, step in enumerate(expected):
        np.testing.assert_allclose(probs[0][0, i + 1, step["ids"]], step["probs"], atol=1e-5)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("task", ["language_model", "classification", "forecasting"])
def test_node_reader_gives_the_metadata_props_onnx_reads(tmp_path, task):
    proto = export_model(make_model(task, "gru"), "full")
    path = tmp_path / "model.onnx"
    save_onnx(proto, path)
    out = subprocess.run(
        ["node", str(ROOT / "examples" / "onnx_metadata.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert json.loads(out) == {p.key: p.value for p in onnx.load(str(path)).metadata_props}
