"""save_model / load_model: round trip of every kind, validation of arrays and manifests, other kinds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnn_engine.checkpoint import load_model, save_model
from rnn_engine.errors import IncompatibleModel, NotFound
from rnn_engine.tasks import prepare
from tests.engine.model_cases import TASKS, tiny_config, tiny_dataset, tiny_train

SAMPLE = {
    "language_model": ["the cat"],
    "classification": ["abca"],
    "tagging": ["abc"],
    "forecasting": [[1.0, 2.0, 3.0, 4.0]],
    "one_to_many": ["x"],
    "seq2seq": ["abc"],
}


def fresh(task, **kw):
    model, _ = prepare(tiny_config(task, **kw), tiny_train(), tiny_dataset(task))
    return model


@pytest.mark.parametrize("task", TASKS)
def test_round_trip_keeps_weights_metadata_and_predictions(task, tmp_path):
    model = fresh(task)
    model.metrics, model.history = {"loss": 1.5}, [{"step": 1, "loss": 2.0}]
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.task == task and loaded.config == model.config and loaded.labels == model.labels
    assert loaded.metrics == {"loss": 1.5} and loaded.history == model.history
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p)
        assert loaded.params[name].dtype == p.dtype
    assert loaded.predict(SAMPLE[task], top_k=2) == model.predict(SAMPLE[task], top_k=2)
    assert loaded.info() == model.info()


def test_weights_file_holds_no_pickles(tmp_path):
    save_model(fresh("classification"), tmp_path / "m")
    with np.load(tmp_path / "m" / "weights.npz", allow_pickle=False) as npz:
        assert "rnn.weight_ih_l0" in npz.files


def test_a_model_of_another_kind_is_incompatible(tmp_path):
    save_model(fresh("classification"), tmp_path / "m")
    with pytest.raises(IncompatibleModel, match="expected a language_model model"):
        load_model(tmp_path / "m", task="language_model")


def test_arrays_that_do_not_match_the_manifest_are_incompatible(tmp_path):
    save_model(fresh("language_model"), tmp_path / "m")
    manifest_path = tmp_path / "m" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["config"]["hidden_size"] = 6  # the weights were saved for 5
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IncompatibleModel, match="expected"):
        load_model(tmp_path / "m")


def test_a_dtype_change_is_incompatible(tmp_path):
    model = fresh("language_model")
    save_model(model, tmp_path / "m")
    arrays = dict(np.load(tmp_path / "m" / "weights.npz"))
    arrays["head.bias"] = arrays["head.bias"].astype(np.float64)
    np.savez(tmp_path / "m" / "weights.npz", **arrays)
    with pytest.raises(IncompatibleModel, match="head.bias"):
        load_model(tmp_path / "m")


def test_a_foreign_manifest_is_incompatible_and_a_missing_model_not_found(tmp_path):
    save_model(fresh("language_model"), tmp_path / "m")
    path = tmp_path / "m" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "kind": "something-else"}))
    with pytest.raises(IncompatibleModel, match="not an rnn-service model"):
        load_model(tmp_path / "m")
    with pytest.raises(NotFound):
        load_model(tmp_path / "absent")
