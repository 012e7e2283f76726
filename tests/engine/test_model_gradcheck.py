"""Every model kind's full loss gradient (embedding, recurrent stack, head, label embedding, encoder) against
central finite differences, in float64 on tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.tasks import prepare
from tests.engine.gradcheck import numeric_grad, rel_error
from tests.engine.model_cases import TASKS, tiny_config, tiny_dataset, tiny_train

CASES = [(task, "lstm", False, 1) for task in TASKS] + [
    ("language_model", "gru", False, 2),
    ("language_model", "rnn_tanh", False, 1),
    ("classification", "gru", True, 2),
    ("tagging", "lstm", True, 1),
    ("seq2seq", "gru", False, 2),
    ("one_to_many", "rnn_relu", False, 2),
    ("forecasting", "gru", False, 2),
]


@pytest.mark.parametrize(("task", "cell", "bidirectional", "layers"), CASES)
def test_full_loss_gradient_matches_finite_differences(task, cell, bidirectional, layers):
    cfg = tiny_config(task, cell, dtype="float64", bidirectional=bidirectional, num_layers=layers)
    model, objective = prepare(cfg, tiny_train(), tiny_dataset(task))
    model.net.train()
    batch = objective.batch(1)
    carry = None
    if task == "language_model":  # a carried state from the previous window: no gradient flows into it
        x, y, _ = batch
        batch = (x, y, False)
        _, _, carry = objective.train_step(objective.batch(0), None)
    objective.train_step(batch, carry)
    analytic = model.net.grads()
    assert set(analytic) == set(model.params)
    for name, p in model.params.items():
        numeric = numeric_grad(lambda: objective.train_step(batch, carry)[0], p, eps=1e-5)
        assert rel_error(analytic[name], numeric) < 1e-4, name


@pytest.mark.parametrize("task", ["classification", "tagging", "seq2seq"])
def test_padded_batch_gradient_is_the_mean_of_each_sequence_alone(task):
    cfg = tiny_config(task, "gru", dtype="float64", bidirectional=task != "seq2seq")
    model, objective = prepare(cfg, tiny_train(batch_size=3), tiny_dataset(task))
    batch = objective.batch(0)
    short = batch[1][0][:1]  # a ragged batch: the middle sequence has one step
    if task == "classification":
        batch = [batch[0], (short, batch[1][1]), batch[2]]
    else:
        batch = [batch[0], (short, batch[1][1][:1]), batch[2]]
    objective.train_step(batch, None)
    together = model.net.grads()
    alone = []
    for example in batch:
        objective.train_step([example], None)
        alone.append(model.net.grads())
    weights = [1.0, 1.0, 1.0]
    if task != "classification":  # the loss is a mean over counted steps, not over sequences
        steps = [len(e[1]) + (task == "seq2seq") for e in batch]  # seq2seq also predicts <eos>
        weights = [3 * s / sum(steps) for s in steps]
    for name, g in together.items():
        expected = sum(w * a[name] for w, a in zip(weights, alone, strict=True)) / 3
        np.testing.assert_allclose(g, expected, atol=1e-12, err_msg=name)


def test_forecaster_with_an_exogenous_series_gradient_matches_finite_differences():
    from rnn_engine.tasks import Dataset

    t = np.arange(60.0)
    ds = Dataset("forecasting", np.sin(t / 4) * 3 + 0.1 * t, exog=np.cos(t / 5)[:, None])
    model, objective = prepare(tiny_config("forecasting", "lstm", dtype="float64"), tiny_train(), ds)
    assert model.num_features == 2
    batch = objective.batch(0)
    objective.train_step(batch, None)
    analytic = model.net.grads()
    for name, p in model.params.items():
        numeric = numeric_grad(lambda: objective.train_step(batch, None)[0], p, eps=1e-5)
        assert rel_error(analytic[name], numeric) < 1e-4, name
