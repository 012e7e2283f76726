"""Validation metrics cover the whole validation split by default and say how much they cover."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_engine.config import ModelConfig, TrainConfig
from rnn_engine.losses import cross_entropy
from rnn_engine.tasks import prepare
from rnn_engine.tokenizers import BOS_ID

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog. " * 40


def _lm_dataset(text):
    from rnn_engine.tasks import Dataset

    return Dataset(task="language_model", train=text, validation=text[: len(text) // 2])


def test_language_model_validation_scores_every_token_of_the_split_by_default():
    tcfg = TrainConfig(steps=1, batch_size=4, bptt=8)
    assert tcfg.max_eval_items == 0
    model, objective = prepare(ModelConfig(task="language_model", cell="gru", hidden_size=8, embedding_dim=4),
                               tcfg, _lm_dataset(TEXT))
    metrics = objective.evaluate()
    valid = model.tokenizer.encode(TEXT[: len(TEXT) // 2])
    streams = max(1, min(4, len(valid) // 8))
    per = len(valid) // streams
    assert metrics["validation_items"] == streams * per  # all but the < `streams` tokens left over
    # the same loss by hand: each stream reads <bos> then its tokens, state carried across windows
    rows = np.array(valid[: streams * per]).reshape(streams, per)
    x = np.concatenate([np.full((streams, 1), BOS_ID), rows[:, :-1]], axis=1)
    logits, _ = model.net.forward(x)
    loss, _ = cross_entropy(logits, rows, reduction="sum")
    assert metrics["loss"] == pytest.approx(loss / rows.size, rel=1e-6)  # float32 model
    capped = TrainConfig(steps=1, batch_size=4, bptt=8, max_eval_items=2)
    _, objective = prepare(model.config, capped, _lm_dataset(TEXT))
    assert objective.evaluate()["validation_items"] == 8 * streams  # capped: one window of every stream


def test_classifier_validation_covers_every_sequence_by_default():
    from rnn_engine.tasks import Dataset

    names = [(f"n{i}", "a" if i % 2 else "b") for i in range(700)]
    data = Dataset(task="classification", train=names, validation=names[:600])
    model, objective = prepare(ModelConfig(task="classification", cell="gru", hidden_size=8, embedding_dim=4),
                               TrainConfig(steps=1, batch_size=16), data)
    metrics = objective.evaluate()
    assert metrics["validation_items"] == 600 and math.isfinite(metrics["accuracy"])
