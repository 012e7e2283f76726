"""Model.history_summary: the training history, at most max_rows rows picked evenly (first and last kept)."""

from __future__ import annotations

import pytest

from rnn_engine.errors import InvalidInput
from rnn_engine.model import HISTORY_ROWS
from rnn_engine.tasks import prepare
from rnn_engine.trainer import train
from tests.engine.model_cases import tiny_config, tiny_dataset, tiny_train


def lm():
    return prepare(tiny_config("language_model"), tiny_train(), tiny_dataset("language_model"))[0]


def test_a_short_history_is_returned_whole_and_is_a_copy():
    task = "language_model"
    model = train(tiny_config(task), tiny_train(steps=6, eval_every=2), tiny_dataset(task))
    rows = model.history_summary()
    assert [r["step"] for r in rows] == [2, 4, 6] and all("train_loss" in r for r in rows)
    rows[0]["step"] = -1
    assert model.history[0]["step"] == 2


def test_a_long_history_is_thinned_evenly_keeping_the_first_and_last_rows():
    model = lm()
    model.history = [{"step": s, "train_loss": 1.0 / s} for s in range(1, 10_001)]
    rows = model.history_summary()
    steps = [r["step"] for r in rows]
    assert len(rows) == HISTORY_ROWS == 2000
    assert steps[0] == 1 and steps[-1] == 10_000 and steps == sorted(set(steps))
    gaps = {b - a for a, b in zip(steps, steps[1:], strict=False)}
    assert gaps <= {5, 6}  # even spacing: 9999 steps over 1999 gaps
    assert [r["step"] for r in model.history_summary(3)] == [1, 5001, 10_000]  # rows 0, 5000, 9999


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "10"])
def test_max_rows_is_validated(bad):
    with pytest.raises(InvalidInput, match="max_rows"):
        lm().history_summary(bad)
