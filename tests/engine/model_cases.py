"""Tiny datasets and configs for every model kind (model, trainer, generation and checkpoint tests)."""

from __future__ import annotations

import numpy as np

from rnn_engine.config import ModelConfig, TrainConfig
from rnn_engine.tasks import Dataset, load_dataset

TASKS = ("language_model", "classification", "tagging", "forecasting", "one_to_many", "seq2seq")

LM_TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat.\n" * 6
WORDS = ["abc", "bca", "cab", "acb", "bac", "cba", "aab", "bba", "cca", "abb", "bcc", "cab", "aca", "bab"]


def tiny_dataset(task: str) -> Dataset:
    """A few dozen examples per task, enough for a step or two of training."""
    if task == "language_model":
        return load_dataset(task, LM_TEXT)
    if task == "classification":
        return load_dataset(
            task, [(w * (1 + i % 3), "starts_a" if w[0] == "a" else "other") for i, w in enumerate(WORDS * 2)]
        )
    if task == "tagging":
        rows = [(list(w), ["V" if c == "a" else "C" for c in w]) for w in WORDS * 2]
        return load_dataset(task, rows)
    if task == "forecasting":
        t = np.arange(80.0)
        return load_dataset(task, np.sin(t / 4.0) * 10 + t * 0.1)
    if task == "one_to_many":
        return load_dataset(task, [(w, "x" if i % 2 else "y") for i, w in enumerate(WORDS * 2)])
    return load_dataset(task, [(w, w[::-1]) for w in WORDS * 2])


def tiny_config(task: str, cell: str = "lstm", **kw) -> ModelConfig:
    base = dict(task=task, cell=cell, hidden_size=5, embedding_dim=3, num_layers=1, window=6, seed=3)
    base.update(kw)
    return ModelConfig(**base)


def tiny_train(**kw) -> TrainConfig:
    base = dict(steps=6, batch_size=4, bptt=8, lr=1e-2, eval_every=3, seed=1)
    base.update(kw)
    return TrainConfig(**base)
