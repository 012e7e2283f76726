"""Every model kind's exported graphs compute what the engine's network computes (onnxruntime, and
ReferenceEvaluator on small unpadded cases), carry self-describing metadata, and pass the full checker."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from rnn_engine.backend import no_grad
from rnn_engine.errors import InvalidInput
from rnn_engine.losses import softmax
from rnn_engine.onnx_export import OPSET, export_model, graphs_for
from tests.export.model_cases import CELLS, LABELS, make_model, random_batch, session, zero_state

TOL = 1e-5


def close(got, want):
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch", [1, 4])
def test_language_model_full_graph_equals_engine(cell, batch):
    model = make_model("language_model", cell)
    ids, lengths = random_batch(model.tokenizer.vocab_size, batch, 7, np.random.default_rng(0))
    with no_grad():
        logits, (h_n, c_n) = model.net.forward(ids, lengths)
    got = session(export_model(model, "full")).run(None, {"tokens": ids, "lengths": lengths})
    close(got[0], logits)
    close(got[1], softmax(logits))
    close(got[2], h_n)
    if cell == "lstm":
        close(got[3], c_n)


@pytest.mark.parametrize("cell", CELLS)
def test_step_graph_run_t_times_equals_full_graph(cell):
    model = make_model("language_model", cell, layers=3)
    ids, lengths = random_batch(model.tokenizer.vocab_size, 3, 6, np.random.default_rng(1), padded=False)
    full = session(export_model(model, "full")).run(None, {"tokens": ids, "lengths": lengths})
    step = session(export_model(model, "step"))
    state = zero_state(model.net.rnn, 3)
    for t in range(ids.shape[1]):
        out = step.run(None, {"token": ids[:, t], **state})
        close(out[0], full[0][:, t])
        state = {"h": out[2], **({"c": out[3]} if cell == "lstm" else {})}
    close(state["h"], full[2])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_reads_each_sequence_at_its_last_real_step(cell, bidirectional):
    model = make_model("classification", cell, bidirectional=bidirectional)
    ids, lengths = random_batch(model.tokenizer.vocab_size, 5, 8, np.random.default_rng(2))
    with no_grad():
        logits, _ = model.net.forward(ids, lengths)
    got = session(export_model(model, "full")).run(None, {"tokens": ids, "lengths": lengths})
    close(got[0], logits)
    close(got[1], softmax(logits))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_tagger_full_graph_equals_engine(cell, bidirectional):
    model = make_model("tagging", cell, bidirectional=bidirectional)
    ids, lengths = random_batch(model.tokenizer.vocab_size, 4, 9, np.random.default_rng(3))
    with no_grad():
        logits, _ = model.net.forward(ids, lengths)
    got = session(export_model(model, "full")).run(None, {"tokens": ids, "lengths": lengths})
    close(got[0], logits)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("residual", [True, False])
def test_forecaster_normalises_inside_the_graph(cell, residual):
    model = make_model("forecasting", cell)
    model.net.residual = residual  # the head predicts the change from the last value, or the value itself
    rng = np.random.default_rng(4)
    raw = (rng.standard_normal((3, 6, 2)) * [4.0, 0.5] + [10.0, -1.0]).astype(np.float32)
    mean, std = np.array(model.norm["mean"]), np.array(model.norm["std"])
    with no_grad():
        pred, _ = model.net.forward(((raw - mean) / std).astype(np.float32))
    got = session(export_model(model, "full")).run(None, {"window": raw})
    close(got[0], pred * std[0] + mean[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_to_many_encoder_and_decoder_step_equal_engine(cell):
    model = make_model("one_to_many", cell)
    net = model.net
    labels = np.array([2, 0, 1])
    ids, _ = random_batch(model.tokenizer.vocab_size, 3, 5, np.random.default_rng(5), padded=False)
    with no_grad():
        state = net.initial_state(labels)
        logits, _ = net.decode(ids, state)
    enc = session(export_model(model, "encoder")).run(None, {"label": labels})
    close(enc[0], state[0])
    feeds = {"h": enc[0], **({"c": enc[1]} if cell == "lstm" else {})}
    step = session(export_model(model, "decoder_step"))
    for t in range(ids.shape[1]):
        out = step.run(None, {"token": ids[:, t], **feeds})
        close(out[0], logits[:, t])
        feeds = {"h": out[2], **({"c": out[3]} if cell == "lstm" else {})}


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_relu"])
def test_seq2seq_encoder_and_decoder_step_equal_engine(cell):
    model = make_model("seq2seq", cell)
    net = model.net
    rng = np.random.default_rng(6)
    src, src_len = random_batch(model.tokenizer.vocab_size, 3, 7, rng)
    dec, _ = random_batch(model.tokenizer.vocab_size, 3, 4, rng, padded=False)
    with no_grad():
        state = net.encode(src, src_len)
        logits, _ = net.decode(dec, state)
    enc = session(export_model(model, "encoder")).run(None, {"tokens": src, "lengths": src_len})
    close(enc[0], state[0])
    feeds = {"h": enc[0], **({"c": enc[1]} if cell == "lstm" else {})}
    step = session(export_model(model, "decoder_step"))
    for t in range(dec.shape[1]):
        out = step.run(None, {"token": dec[:, t], **feeds})
        close(out[0], logits[:, t])
        feeds = {"h": out[2], **({"c": out[3]} if cell == "lstm" else {})}


@pytest.mark.parametrize("task,graph", [("language_model", "full"), ("language_model", "step"),
                                        ("classification", "full"), ("forecasting", "full"),
                                        ("seq2seq", "encoder"), ("one_to_many", "encoder")])
def test_reference_evaluator_agrees_with_onnxruntime(task, graph):
    model = make_model(task, "gru", layers=1, hidden=4)
    rng = np.random.default_rng(7)
    if graph == "step":
        feeds = {"token": np.array([5, 6]), "h": rng.standard_normal((1, 2, 4)).astype(np.float32)}
    elif task == "forecasting":
        feeds = {"window": rng.standard_normal((2, 4, 2)).astype(np.float32)}
    elif task == "one_to_many":
        feeds = {"label": np.array([1, 2])}
    else:  # unpadded: ReferenceEvaluator ignores sequence_lens
        ids, lengths = random_batch(model.tokenizer.vocab_size, 2, 4, rng, padded=False)
        feeds = {"tokens": ids, "lengths": lengths}
    proto = export_model(model, graph)
    reference = ReferenceEvaluator(proto).run(None, feeds)
    for want, got in zip(session(proto).run(None, feeds), reference, strict=True):
        close(got, want)


@pytest.mark.parametrize("task", ["language_model", "classification", "tagging", "forecasting",
                                  "one_to_many", "seq2seq"])
def test_every_graph_passes_the_full_checker_with_dynamic_batch(task):
    model = make_model(task, "lstm", bidirectional=task == "tagging")
    for graph in graphs_for(task):
        proto = export_model(model, graph)
        onnx.checker.check_model(proto, full_check=True)
        assert proto.opset_import[0].version == OPSET
        assert {"RNN", "LSTM", "GRU"} & {n.op_type for n in proto.graph.node} or graph == "encoder"
        assert not {"Loop", "Scan"} & {n.op_type for n in proto.graph.node}
        first = proto.graph.input[0].type.tensor_type.shape.dim[0]
        assert first.dim_param == "batch"


def test_metadata_describes_vocabulary_labels_and_config():
    model = make_model("classification", "gru", word=True)
    props = {p.key: p.value for p in export_model(model, "full").metadata_props}
    config = json.loads(props["rnn_config"])
    assert config["task"] == config["kind"] == "classification" and config["graph"] == "full"
    assert config["hidden_size"] == 8 and config["num_layers"] == 2 and config["format_version"] == 1
    assert config["tokenizer"]["kind"] == "word" and config["special_tokens"]["eos"] == 3
    vocab = json.loads(props["vocab"])
    assert [v["token"] for v in vocab] == model.tokenizer.tokens
    assert [v["special"] for v in vocab[:5]] == [True, True, True, True, False]
    assert json.loads(props["labels"]) == LABELS


def test_forecaster_metadata_holds_the_normalisation():
    model = make_model("forecasting", "gru")
    props = {p.key: p.value for p in export_model(model, "full").metadata_props}
    norm = json.loads(props["normalisation"])
    assert norm["mean"] == [10.0, -1.0] and norm["std"] == [4.0, 0.5] and norm["applied_in_graph"]
    assert "vocab" not in props and json.loads(props["rnn_config"])["window"] == 6


def test_unknown_graph_or_model_is_a_clear_error():
    with pytest.raises(InvalidInput, match="model: expected an rnn_engine Model, got NoneType"):
        export_model(None)
    exports = r"graph: a seq2seq model exports \['full', 'encoder', 'decoder_step'\]"
    with pytest.raises(InvalidInput, match=exports):
        export_model(make_model("seq2seq", "gru"), "step")
    with pytest.raises(InvalidInput, match="graph: a classification model exports"):
        export_model(make_model("classification", "gru"), "step")


def test_classifier_probabilities_equal_model_predict():
    model = make_model("classification", "lstm", bidirectional=True)
    texts = ["the lazy dog", "a cat", "jumps over the quick brown fox!"]
    ids, lengths = model.pad([model.tokenizer.encode(t) for t in texts])
    probs = session(export_model(model, "full")).run(None, {"tokens": ids, "lengths": lengths})[1]
    for row, result in zip(probs, model.predict(texts, top_k=len(LABELS)), strict=True):
        want = dict(zip(result["labels"], result["probs"], strict=True))
        close(row, [want[label] for label in LABELS])


def test_forecaster_prediction_equals_model_predict():
    model = make_model("forecasting", "gru", num_features=1)
    series = list(10.0 + 4.0 * np.sin(np.arange(20) / 3.0))
    want = model.predict([series])[0]["values"][0]
    window = np.array(series[-model.config.window:], dtype=np.float32)[None, :, None]
    got = session(export_model(model, "full")).run(None, {"window": window})[0]
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_seq2seq_full_graph_equals_engine_teacher_forcing(cell):
    model = make_model("seq2seq", cell)
    rng = np.random.default_rng(8)
    src, src_len = random_batch(model.tokenizer.vocab_size, 3, 6, rng)
    dec, dec_len = random_batch(model.tokenizer.vocab_size, 3, 5, rng)
    with no_grad():
        logits = model.net.forward(src, src_len, dec)
    got = session(export_model(model, "full")).run(None, {"source_tokens": src, "source_lengths": src_len,
                                                          "tokens": dec, "lengths": dec_len})
    real = np.arange(5)[None, :] < dec_len[:, None]  # the engine's decoder does not mask padded steps
    close(got[0][real], logits[real])
    bias = model.net.head.params["bias"]
    np.testing.assert_allclose(got[0][~real], np.broadcast_to(bias, got[0][~real].shape), atol=TOL)


def test_one_to_many_full_graph_equals_engine_teacher_forcing():
    model = make_model("one_to_many", "lstm")
    ids, lengths = random_batch(model.tokenizer.vocab_size, 3, 5, np.random.default_rng(9), padded=False)
    labels = np.array([0, 2, 1])
    with no_grad():
        logits = model.net.forward(labels, ids)
    got = session(export_model(model, "full")).run(None, {"label": labels, "tokens": ids, "lengths": lengths})
    close(got[0], logits)


def test_float64_model_exports_as_float32_within_tolerance():
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model

    base = make_model("language_model", "gru")
    model = Model(ModelConfig(task="language_model", cell="gru", hidden_size=8, num_layers=2, embedding_dim=5,
                              dtype="float64", seed=1), tokenizer=base.tokenizer)
    ids, lengths = random_batch(model.tokenizer.vocab_size, 3, 6, np.random.default_rng(10))
    with no_grad():
        logits, _ = model.net.eval().forward(ids, lengths)
    proto = export_model(model, "full")
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in proto.graph.initializer
               if t.data_type != onnx.TensorProto.INT64)
    close(session(proto).run(None, {"tokens": ids, "lengths": lengths})[0], logits)
