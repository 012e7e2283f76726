"""The trainer: events, determinism, resume = uninterrupted (bit for bit), cancellation, early stopping,
checkpoints, and clear errors for bad data."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.checkpoint import load_model, save_model
from rnn_engine.config import TrainConfig
from rnn_engine.errors import Cancelled, IncompatibleModel, InvalidInput
from rnn_engine.tasks import load_dataset
from rnn_engine.trainer import train
from tests.engine.model_cases import TASKS, tiny_config, tiny_dataset, tiny_train


def weights(model):
    return {k: v.copy() for k, v in model.params.items()}


def assert_same_weights(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("task", TASKS)
def test_every_kind_trains_and_reports_events(task):
    events = []
    model = train(tiny_config(task, dropout=0.2), tiny_train(), tiny_dataset(task), on_event=events.append)
    kinds = [e.kind for e in events]
    assert kinds.count("step") == 6 and kinds.count("eval") == 2 and kinds[-1] == "done"
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 7)) and all(e.total_steps == 6 for e in steps)
    assert all(np.isfinite(e.train_loss) and e.items_per_sec > 0 for e in steps)
    evals = [e for e in events if e.kind == "eval"]
    assert "loss" in evals[-1].metrics and model.trained
    if task == "language_model":
        assert evals[-1].metrics["bits_per_char"] == pytest.approx(evals[-1].metrics["loss"] / np.log(2))
    assert model.history[-1]["step"] == 6 and model.metrics


def test_same_seed_gives_the_same_weights_and_another_seed_does_not():
    ds = tiny_dataset("language_model")
    a = train(tiny_config("language_model", dropout=0.3), tiny_train(), ds)
    b = train(tiny_config("language_model", dropout=0.3), tiny_train(), ds)
    c = train(tiny_config("language_model", dropout=0.3, seed=4), tiny_train(), ds)
    assert_same_weights(weights(a), weights(b))
    assert not np.array_equal(a.params["head.weight"], c.params["head.weight"])


@pytest.mark.parametrize("task", ["language_model", "classification", "seq2seq"])
def test_resume_after_cancel_ends_bit_identical_to_an_uninterrupted_run(task, tmp_path):
    cfg = tiny_config(task, dropout=0.25, num_layers=2)
    tcfg = tiny_train(
        steps=9, eval_every=2, optimizer="adamw", schedule="cosine", warmup_steps=2, weight_decay=0.01
    )
    ds = tiny_dataset(task)
    whole = train(cfg, tcfg, ds)
    steps = []
    with pytest.raises(Cancelled):
        train(
            cfg,
            tcfg,
            ds,
            checkpoint_dir=tmp_path,
            on_event=lambda e: steps.append(e.step),
            should_stop=lambda: len(steps) >= 5,
        )
    resumed = train(cfg, tcfg, ds, checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(weights(whole), weights(resumed))
    assert whole.history == resumed.history and whole.metrics == resumed.metrics


def test_checkpoints_at_intervals_and_best(tmp_path):
    events = []
    train(
        tiny_config("classification"),
        tiny_train(checkpoint_every=2),
        tiny_dataset("classification"),
        checkpoint_dir=tmp_path,
        on_event=events.append,
    )
    written = [e.checkpoint for e in events if e.kind == "checkpoint"]
    assert str(tmp_path / "latest") in written and str(tmp_path / "best") in written
    assert load_model(tmp_path / "best").trained


def test_early_stopping_stops_after_patience_evaluations_without_improvement():
    events = []
    tcfg = tiny_train(steps=200, eval_every=1, patience=2, lr=0.5, optimizer="sgd")
    model = train(tiny_config("forecasting"), tcfg, tiny_dataset("forecasting"), on_event=events.append)
    done = events[-1]
    assert done.kind == "done" and done.step < 200
    scores = [h["mse"] for h in model.history]
    best = int(np.argmin(scores))
    assert len(scores) - 1 - best == 2  # stopped after two evaluations without a new best
    assert model.metrics["mse"] == min(scores)  # and returned the best weights' metrics


def test_epochs_set_the_number_of_steps():
    events = []
    ds = tiny_dataset("classification")
    train(
        tiny_config("classification"), tiny_train(steps=0, epochs=2, batch_size=5), ds, on_event=events.append
    )
    assert events[-1].total_steps == 2 * ((len(ds.train) - 3) // 5)  # 10% held out


def test_resume_with_a_checkpoint_of_another_kind_is_incompatible(tmp_path):
    train(
        tiny_config("classification"), tiny_train(), tiny_dataset("classification"), checkpoint_dir=tmp_path
    )
    with pytest.raises(IncompatibleModel):
        train(
            tiny_config("language_model"),
            tiny_train(),
            tiny_dataset("language_model"),
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_a_failed_run_never_overwrites_a_saved_model(tmp_path):
    good = train(tiny_config("language_model"), tiny_train(), tiny_dataset("language_model"))
    save_model(good, tmp_path / "model")
    before = (tmp_path / "model" / "weights.npz").read_bytes()
    with pytest.raises(Cancelled):
        train(
            tiny_config("language_model"),
            tiny_train(),
            tiny_dataset("language_model"),
            checkpoint_dir=tmp_path / "ckpt",
            should_stop=lambda: True,
        )
    with pytest.raises(InvalidInput):
        train(tiny_config("language_model"), tiny_train(bptt=10_000), tiny_dataset("language_model"))
    assert (tmp_path / "model" / "weights.npz").read_bytes() == before


@pytest.mark.parametrize(
    ("task", "source", "options", "match"),
    [
        ("language_model", "   \n ", {}, "corpus is empty"),
        ("language_model", "abcab" * 4, {"bptt": 16}, "shorter than one bptt window"),
        ("language_model", "aaaaaaaaaaaaaaaa" * 8, {}, "at least 2 distinct symbols"),
        ("classification", [("abc", "")] * 4, {}, "non-empty values"),
        ("classification", [("abc", "x")] * 4, {}, "at least 2 classes"),
        ("classification", [("abc",)] * 4, {}, "pair"),
        ("classification", [("a" * 30, "x"), ("b", "y")] * 3, {}, "max_length=20"),
        ("tagging", [(["a", "b"], ["X"])] * 4, {}, "one tag per token"),
        ("forecasting", list(range(8)), {}, "longer series"),
    ],
)
def test_bad_data_is_a_clear_error(task, source, options, match):
    tcfg = tiny_train(**options)
    with pytest.raises(InvalidInput, match=match):
        train(tiny_config(task, max_length=20), tcfg, load_dataset(task, source))


def test_bad_settings_are_rejected():
    with pytest.raises(InvalidInput, match="lr"):
        TrainConfig(lr=0.0).validate()
    with pytest.raises(InvalidInput, match="bidirectional"):
        tiny_config("language_model", bidirectional=True).validate()
    with pytest.raises(InvalidInput, match="unknown settings"):
        TrainConfig.from_dict({"stpes": 3})
    with pytest.raises(InvalidInput, match="expected data for task"):
        train(tiny_config("classification"), tiny_train(), tiny_dataset("tagging"))
