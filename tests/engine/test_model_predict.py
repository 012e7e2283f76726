"""Model.predict result shapes per kind, streaming equals whole-sequence prediction, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.errors import FailedPrecondition, InvalidInput
from rnn_engine.tasks import prepare
from tests.engine.model_cases import tiny_config, tiny_dataset, tiny_train


def fresh(task, **kw):
    model, _ = prepare(tiny_config(task, dtype="float64", **kw), tiny_train(), tiny_dataset(task))
    return model


def test_language_model_predict_gives_top_k_next_tokens_per_input_token():
    model = fresh("language_model")
    (res,) = model.predict(["the cat"], top_k=3)
    assert len(res["tokens"]) == len(res["top_tokens"]) == 7
    step = res["top_tokens"][0]
    assert len(step["ids"]) == len(step["texts"]) == len(step["probs"]) == 3
    assert step["probs"] == sorted(step["probs"], reverse=True)
    assert step["texts"] == [model.tokenizer.token_text(i) for i in step["ids"]]


def test_classification_predict_gives_labels_and_probabilities():
    model = fresh("classification")
    res = model.predict(["abc", "cbacba"], top_k=5)
    assert [sorted(r["labels"]) for r in res] == [sorted(model.labels)] * 2  # k is capped at the classes
    assert all(abs(sum(r["probs"]) - 1) < 1e-9 for r in res)


def test_tagging_predict_gives_one_tag_per_token():
    model = fresh("tagging")
    (a, b) = model.predict(["abca", ["a", "b", "zz"]], top_k=2)
    assert a["tokens"] == list("abca") and len(a["tags"]) == 4 and len(a["top_tags"][0]) == 2
    assert b["tokens"] == ["a", "b", "zz"] and set(b["tags"]) <= set(model.labels)


def test_forecasting_predict_gives_the_next_value():
    model = fresh("forecasting")
    (res,) = model.predict([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    assert len(res["values"]) == 1 and np.isfinite(res["values"][0])


@pytest.mark.parametrize("task", ["one_to_many", "seq2seq"])
def test_decoders_predict_text(task):
    model = fresh(task)
    (res,) = model.predict(["x" if task == "one_to_many" else "abc"])
    assert isinstance(res["text"], str) and len(res["tokens"]) <= 200


@pytest.mark.parametrize(
    ("task", "chunks"),
    [
        ("language_model", ["the c", "at s", "at."]),
        ("classification", ["ab", "cab", "c"]),
        ("tagging", ["ab", "c", "ba"]),
        ("forecasting", [[1.0, 2.0, 3.0], [4.0, 5.0], [6.0, 7.0, 8.0, 9.0]]),
    ],
)
def test_streaming_chunks_equal_prediction_on_the_concatenation(task, chunks):
    model = fresh(task, num_layers=2, cell="gru")
    state = model.initial_state(1)
    streamed = []
    for chunk in chunks:
        (res,), state = model.predict_chunk([chunk], state, top_k=2)
        streamed.append(res)
    whole_input = "".join(chunks) if isinstance(chunks[0], str) else sum(chunks, [])
    (whole,) = model.predict([whole_input], top_k=2)
    if task == "language_model":
        steps = [s for r in streamed for s in r["top_tokens"]]
        assert [s["ids"] for s in steps] == [s["ids"] for s in whole["top_tokens"]]
        np.testing.assert_allclose(
            [s["probs"] for s in steps], [s["probs"] for s in whole["top_tokens"]], atol=1e-12
        )
    elif task == "tagging":
        assert sum((r["tags"] for r in streamed), []) == whole["tags"]
        np.testing.assert_allclose(sum((r["probs"] for r in streamed), []), whole["probs"], atol=1e-12)
    elif task == "classification":
        assert streamed[-1]["labels"] == whole["labels"]
        np.testing.assert_allclose(streamed[-1]["probs"], whole["probs"], atol=1e-12)
    else:
        np.testing.assert_allclose(streamed[-1]["values"], whole["values"], atol=1e-12)


def test_streaming_several_streams_of_different_chunk_lengths():
    model = fresh("language_model")
    state = model.initial_state(2)
    out1, state = model.predict_chunk(["the", "a c"], state)
    out2, state = model.predict_chunk(["m", "at"], state)
    whole = model.predict(["them", "a cat"])
    for b in range(2):
        got = [s["ids"] for s in out1[b]["top_tokens"] + out2[b]["top_tokens"]]
        assert got == [s["ids"] for s in whole[b]["top_tokens"]]


def test_streaming_needs_a_unidirectional_model():
    with pytest.raises(FailedPrecondition, match="bidirectional"):
        fresh("classification", bidirectional=True).initial_state(1)


@pytest.mark.parametrize(
    ("task", "inputs", "match"),
    [
        ("language_model", "the cat", "expected a list"),
        ("language_model", [], "at least one sequence"),
        ("language_model", [""], "non-empty"),
        ("language_model", ["a" * 11], "max_length=10"),
        ("classification", [3], "expected a str"),
        ("forecasting", [[]], "non-empty series"),
        ("forecasting", [[1.0, float("nan")]], "NaN"),
        ("one_to_many", ["no-such-label"], "trained labels"),
    ],
)
def test_bad_inputs_are_invalid_input_naming_the_field(task, inputs, match):
    model = fresh(task, max_length=10)
    with pytest.raises(InvalidInput, match=match):
        model.predict(inputs)


def test_bad_top_k_and_state_are_rejected():
    model = fresh("language_model")
    with pytest.raises(InvalidInput, match="top_k"):
        model.predict(["the"], top_k=0)
    with pytest.raises(InvalidInput, match="state"):
        model.predict_chunk(["the"], {"task": "classification"})
    with pytest.raises(InvalidInput, match="expected 2 chunks"):
        model.predict_chunk(["the"], model.initial_state(2))


def test_info_is_json_able_and_describes_the_model():
    import json

    model = fresh("classification")
    info = json.loads(json.dumps(model.info()))
    assert info["task"] == "classification" and info["labels"] == model.labels
    assert info["num_parameters"] == sum(p.size for p in model.params.values())


def test_forecaster_with_exogenous_series_predicts_and_forecasts_from_rows(tmp_path):
    from rnn_engine.tasks import load_dataset

    t = np.arange(60.0)
    rows = "\n".join(f"{i},{np.sin(i / 3) * 5 + i:.4f},{np.cos(i / 3):.4f}" for i in range(60))
    (tmp_path / "s.csv").write_text("step,y,x\n" + rows + "\n")
    ds = load_dataset("forecasting", tmp_path / "s.csv", column="y", exog_columns=["x"])
    assert ds.exog.shape == (60, 1) and len(t) == 60
    model, _ = prepare(tiny_config("forecasting", dtype="float64"), tiny_train(), ds)
    assert model.num_features == 2 and len(model.norm["mean"]) == 2
    history = [[float(v), float(np.cos(i / 3))] for i, v in enumerate(np.sin(t[:10] / 3) * 5 + t[:10])]
    (res,) = model.predict([history])
    forecast = model.forecast(history, 3, future_exog=[[0.1], [0.2], [0.3]])
    assert len(forecast) == 3 and forecast[0] == pytest.approx(res["values"][0])
    with pytest.raises(InvalidInput, match="future_exog"):
        model.forecast(history, 3)
    with pytest.raises(InvalidInput, match="2 value"):
        model.predict([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("kind", ["word", "byte"])
def test_word_and_byte_language_models_predict_and_generate(kind):
    from rnn_engine.config import GenerationConfig
    from rnn_engine.generate import GenerationEnd

    model = fresh("language_model", tokenizer=kind)
    (res,) = model.predict(["the cat sat"], top_k=2)
    assert len(res["top_tokens"]) == len(model.tokenizer.encode("the cat sat"))
    records = list(model.generate("the cat", GenerationConfig(max_new_tokens=20, seed=0)))
    end = records[-1]
    assert isinstance(end, GenerationEnd)
    assert end.text.startswith("".join(r.text for r in records[:-1]))
