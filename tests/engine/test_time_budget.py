"""A training time budget ends the run with the best model, evaluated and saved, instead of losing it."""

from __future__ import annotations

import pytest

from rnn_engine.checkpoint import load_model
from rnn_engine.config import TrainConfig
from rnn_engine.errors import InvalidInput
from rnn_engine.trainer import train
from tests.engine.model_cases import tiny_config, tiny_dataset


def test_time_budget_stops_training_and_returns_the_best_evaluated_model(tmp_path):
    events = []
    tcfg = TrainConfig(steps=10**7, batch_size=4, bptt=8, eval_every=10**6, time_budget=0.3)
    model = train(tiny_config("language_model"), tcfg, tiny_dataset("language_model"), on_event=events.append,
                  checkpoint_dir=tmp_path / "ckpt")
    steps = [e for e in events if e.kind == "step"]
    evals = [e for e in events if e.kind == "eval"]
    assert model.training["stopped"] == "time_budget" and 0 < steps[-1].step < 10**7
    assert model.training["elapsed"] >= 0.3
    assert evals and evals[-1].step == steps[-1].step  # the last weights were evaluated before stopping
    assert model.trained and model.metrics == evals[-1].metrics  # the only evaluation is the best one
    assert [e.kind for e in events][-1] == "done"
    saved = load_model(tmp_path / "ckpt" / "best")
    assert saved.metrics == model.metrics


def test_a_run_without_a_budget_says_it_ran_its_steps():
    model = train(tiny_config("language_model"), TrainConfig(steps=3, batch_size=4, bptt=8, eval_every=3),
                  tiny_dataset("language_model"))
    assert model.training["stopped"] == "steps"
    with pytest.raises(InvalidInput, match=r"^time_budget: "):
        TrainConfig(time_budget=-1).validate()
