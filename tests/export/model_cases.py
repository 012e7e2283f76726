"""Small untrained models of every kind for the export tests, and an onnxruntime session helper."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from rnn_engine.config import ModelConfig
from rnn_engine.model import Model
from rnn_engine.tokenizers import CharTokenizer, WordTokenizer

TEXT = "the quick brown fox jumps over the lazy dog, then sleeps. a cat watches!"
LABELS = ["neg", "neu", "pos"]
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


def make_model(task: str, cell: str = "lstm", *, layers: int = 2, bidirectional: bool = False,
               hidden: int = 8, word: bool = False, seed: int = 1, num_features: int = 2) -> Model:
    """A fresh model (random weights from `seed`) with a char (or word) tokenizer fitted on TEXT."""
    cfg = ModelConfig(task=task, cell=cell, hidden_size=hidden, num_layers=layers, embedding_dim=5,
                      bidirectional=bidirectional, tokenizer="word" if word else "char", window=6, seed=seed)
    kw: dict = {}
    if task != "forecasting":
        kw["tokenizer"] = (WordTokenizer if word else CharTokenizer).fit([TEXT])
    if task in ("classification", "tagging", "one_to_many"):
        kw["labels"] = list(LABELS)
    if task == "forecasting":
        kw.update(num_features=num_features,
                  norm={"mean": [10.0, -1.0][:num_features], "std": [4.0, 0.5][:num_features]})
    model = Model(cfg, **kw)
    model.net.eval()
    return model


def session(proto: onnx.ModelProto):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graphs")
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def random_batch(vocab: int, batch: int, steps: int, rng: np.random.Generator, padded: bool = True):
    """Right-padded ids (B, T) (pad id 0, real ids >= 4) and lengths (B,) with the first sequence full."""
    lengths = rng.integers(1, steps + 1, size=batch) if padded else np.full(batch, steps)
    lengths[0] = steps
    ids = rng.integers(4, vocab, size=(batch, steps))
    ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    return ids.astype(np.int64), lengths.astype(np.int64)


def zero_state(rnn, batch: int) -> dict[str, np.ndarray]:
    shape = (rnn.num_layers * rnn.num_directions, batch, rnn.hidden_size)
    feeds = {"h": np.zeros(shape, np.float32)}
    if rnn.mode == "LSTM":
        feeds["c"] = np.zeros(shape, np.float32)
    return feeds



def fit_briefly(model: Model, steps: int = 120, lr: float = 0.02) -> Model:
    """A few Adam steps of teacher forcing towards TEXT, so that greedy output varies (not one token).

    Language model: TEXT after <bos>; one-to-many: TEXT for label "pos"; seq2seq: "a cat jumps" -> TEXT.
    """
    from rnn_engine.losses import cross_entropy
    from rnn_engine.optim import Adam
    from rnn_engine.tokenizers import BOS_ID, EOS_ID

    tok, net = model.tokenizer, model.net
    target = np.array([[BOS_ID] + tok.encode(TEXT) + [EOS_ID]])
    if model.task == "language_model":
        run = lambda: net.forward(target[:, :-1])[0]  # noqa: E731
    elif model.task == "one_to_many":
        run = lambda: net.forward(np.array([LABELS.index("pos")]), target[:, :-1])  # noqa: E731
    else:
        src = np.array([tok.encode("a cat jumps")])
        run = lambda: net.forward(src, np.array([src.shape[1]]), target[:, :-1])  # noqa: E731
    opt = Adam(net.params, lr=lr)
    net.train()
    for _ in range(steps):
        _, d_logits = cross_entropy(run(), target[:, 1:])
        net.backward(d_logits)
        opt.step(net.grads())
    net.eval()
    return model
