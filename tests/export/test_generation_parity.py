"""Greedy generation through onnxruntime equals the engine's `Model.generate` (temperature 0) token for
token, and examples/onnx_generate.py reproduces the engine's text from the .onnx file alone."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from rnn_engine.config import GenerationConfig, ModelConfig
from rnn_engine.model import Model
from rnn_engine.onnx_export import export_model, save_onnx
from rnn_engine.tokenizers import ByteTokenizer
from tests.export.model_cases import fit_briefly, make_model, session

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_generate.py"


@cache
def trained(task: str, cell: str, word: bool = False) -> Model:
    """A small model fitted for a moment on the test text (cached: several tests share it)."""
    return fit_briefly(make_model(task, cell, seed=2, hidden=24, word=word), steps=100)


def engine_greedy(model, prompt: str, **kw) -> tuple[list[int], str]:
    *tokens, end = model.generate(prompt, GenerationConfig(temperature=0.0, max_new_tokens=25, **kw))
    return [t.id for t in tokens], end.text


def onnx_greedy(step, logits: np.ndarray, state: dict, never: list[int], eos: int, limit: int) -> list[int]:
    """Argmax decoding with the exported step graph, from the logits after the prompt."""
    ids = []
    for _ in range(limit):
        z = logits.astype(np.float64)
        z[never] = -np.inf
        token = int(np.argmax(z))
        if token == eos:
            break
        ids.append(token)
        out = step.run(None, {"token": np.array([token]), **state})
        logits = out[0][0]
        state = {"h": out[2], **({"c": out[3]} if len(out) > 3 else {})}
    return ids


def config_of(proto) -> dict:
    return json.loads({p.key: p.value for p in proto.metadata_props}["rnn_config"])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
def test_language_model_greedy_tokens_equal_engine(cell):
    model = trained("language_model", cell)
    full_proto = export_model(model, "full")
    cfg = config_of(full_proto)
    prompt = "the quick"
    ids = np.array([cfg["prompt_prefix"] + model.tokenizer.encode(prompt)])
    out = session(full_proto).run(None, {"tokens": ids, "lengths": np.array([ids.shape[1]])})
    state = {"h": out[2], **({"c": out[3]} if cell == "lstm" else {})}
    step = session(export_model(model, "step"))
    got = onnx_greedy(step, out[0][0, -1], state, cfg["never_generate"], cfg["special_tokens"]["eos"], 25)
    want, _ = engine_greedy(model, prompt)
    assert len(set(want)) >= 5 and got == want


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_seq2seq_greedy_tokens_equal_engine(cell):
    model = trained("seq2seq", cell)
    src = model.tokenizer.encode("a cat jumps")
    enc = session(export_model(model, "encoder")).run(None, {"tokens": np.array([src]),
                                                              "lengths": np.array([len(src)])})
    step_proto = export_model(model, "decoder_step")
    cfg, step = config_of(step_proto), session(step_proto)
    state = {"h": enc[0], **({"c": enc[1]} if cell == "lstm" else {})}
    out = step.run(None, {"token": np.array([cfg["special_tokens"]["bos"]]), **state})
    state = {"h": out[2], **({"c": out[3]} if cell == "lstm" else {})}
    got = onnx_greedy(step, out[0][0], state, cfg["never_generate"], cfg["special_tokens"]["eos"], 25)
    want, _ = engine_greedy(model, "a cat jumps")
    assert len(set(want)) >= 5 and got == want


def test_one_to_many_greedy_tokens_equal_engine():
    model = trained("one_to_many", "lstm")
    enc = session(export_model(model, "encoder")).run(None, {"label": np.array([model.labels.index("pos")])})
    step_proto = export_model(model, "decoder_step")
    cfg, step = config_of(step_proto), session(step_proto)
    state = {"h": enc[0], "c": enc[1]}
    out = step.run(None, {"token": np.array([cfg["special_tokens"]["bos"]]), **state})
    state = {"h": out[2], "c": out[3]}
    got = onnx_greedy(step, out[0][0], state, cfg["never_generate"], cfg["special_tokens"]["eos"], 25)
    want, _ = engine_greedy(model, "", label="pos")
    assert len(set(want)) >= 5 and got == want


def byte_model() -> Model:
    """Random weights scaled up so that greedy output wanders over many bytes (multi-byte characters too)."""
    cfg = ModelConfig(task="language_model", cell="gru", hidden_size=16, embedding_dim=8, tokenizer="byte",
                      seed=7)
    model = Model(cfg, tokenizer=ByteTokenizer())
    for p in model.net.params.values():
        p *= 4.0
    model.net.eval()
    return model


@pytest.mark.parametrize("kind", ["char", "word", "byte"])
def test_example_script_prints_the_engines_greedy_text(tmp_path, kind):
    model = byte_model() if kind == "byte" else trained("language_model", "lstm", word=kind == "word")
    path = save_onnx(export_model(model, "step"), tmp_path / "lm_step.onnx")
    prompt = "the lazy" if kind != "byte" else "héllo"
    command = [sys.executable, str(EXAMPLE), str(path), "--prompt", prompt, "--max-new-tokens", "25"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, want = engine_greedy(model, prompt)
    assert len(set(want)) >= 5 and result.stdout == want + "\n"


def test_example_script_imports_nothing_from_this_project():
    tree = ast.parse(EXAMPLE.read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
              and node.module}
    assert roots <= {"__future__", "argparse", "codecs", "json", "re", "sys", "numpy", "onnxruntime"}, roots
