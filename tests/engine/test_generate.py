"""Generation: records, seeds, greedy, top-k/top-p, penalties, stop sequences, eos, cancellation, beam search,
forecast rollout."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.config import GenerationConfig
from rnn_engine.errors import Cancelled, FailedPrecondition, InvalidInput
from rnn_engine.generate import GeneratedToken, GenerationEnd, choose
from rnn_engine.losses import log_softmax
from rnn_engine.tasks import prepare
from rnn_engine.tokenizers import EOS_ID
from tests.engine.model_cases import tiny_config, tiny_dataset, tiny_train


def fresh(task, **kw):
    model, _ = prepare(tiny_config(task, **kw), tiny_train(), tiny_dataset(task))
    if task == "language_model":  # an untrained model may say <eos>; a trained one never sees it in a stream
        model.params["head.bias"][EOS_ID] = -50.0
    return model


def run(model, prompt="the ", **kw):
    records = list(model.generate(prompt, GenerationConfig(**kw)))
    assert isinstance(records[-1], GenerationEnd)
    assert all(isinstance(r, GeneratedToken) for r in records[:-1])
    return records[:-1], records[-1]


def test_records_end_with_a_summary_whose_text_is_the_tokens_text():
    tokens, end = run(fresh("language_model"), max_new_tokens=12, seed=0)
    assert end.finish_reason == "length" and end.generated_tokens == len(tokens) == 12
    assert end.text == "".join(t.text for t in tokens)
    assert end.prompt_tokens == 5  # <bos> + "the "
    assert all(t.logprob <= 0 for t in tokens)


def test_same_seed_same_text_and_different_seed_different_text():
    model = fresh("language_model")
    a = run(model, max_new_tokens=30, seed=7)[1].text
    assert run(model, max_new_tokens=30, seed=7)[1].text == a
    assert run(model, max_new_tokens=30, seed=8)[1].text != a


def test_greedy_takes_the_most_likely_token_each_step():
    model = fresh("language_model")
    tokens, _ = run(model, max_new_tokens=5, temperature=0.0)
    text = "the "
    for t in tokens:
        (res,) = model.predict([text], top_k=1)
        assert res["top_tokens"][-1]["ids"][0] == t.id  # a fresh model never prefers a special token here
        text += t.text


def test_logprob_is_the_model_probability_of_the_token():
    model = fresh("language_model")
    tokens, _ = run(model, max_new_tokens=1, seed=0)
    (res,) = model.predict(["the "], top_k=model.tokenizer.vocab_size)
    last = res["top_tokens"][-1]
    p = last["probs"][last["ids"].index(tokens[0].id)]
    assert tokens[0].logprob == pytest.approx(np.log(p), abs=1e-6)


def test_choose_top_k_one_is_greedy_and_top_p_keeps_the_nucleus():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([1e-9, 1e-9, 1e-9, 0.01, 0.6, 0.3, 0.09]))
    picks = {choose(logits, GenerationConfig(top_k=1), [], rng) for _ in range(50)}
    assert picks == {4}
    picks = {choose(logits, GenerationConfig(top_p=0.85), [], rng) for _ in range(300)}
    assert picks == {4, 5}
    picks = {choose(logits, GenerationConfig(temperature=5.0), [], rng) for _ in range(500)}
    assert picks == {3, 4, 5, 6}  # pad, unk and bos are never sampled


def test_repetition_penalty_discourages_seen_tokens():
    logits = np.log(np.array([1e-9, 1e-9, 1e-9, 1e-9, 0.5, 0.45, 0.05]))
    greedy = GenerationConfig(temperature=0.0)
    assert choose(logits, greedy, [4], np.random.default_rng(0)) == 4
    penalised = GenerationConfig(temperature=0.0, repetition_penalty=2.0)
    assert choose(logits, penalised, [4], np.random.default_rng(0)) == 5


def test_stop_sequence_ends_generation_after_the_token_that_completes_it():
    model = fresh("language_model")
    tokens, end = run(model, max_new_tokens=200, seed=3, temperature=2.0, stop=["a"])
    assert end.finish_reason == "stop" and end.text.endswith("a") and end.text.count("a") == 1


def test_eos_finishes_and_is_not_yielded():
    model = fresh("language_model")
    model.params["head.bias"][:] = -50.0
    model.params["head.bias"][EOS_ID] = 50.0
    tokens, end = run(model, max_new_tokens=10, seed=0)
    assert tokens == [] and end.finish_reason == "eos" and end.generated_tokens == 0


def test_should_stop_cancels_promptly():
    model = fresh("language_model")
    calls = []
    gen = model.generate(
        "the",
        GenerationConfig(max_new_tokens=100, seed=0),
        should_stop=lambda: len(calls) >= 3 or calls.append(1),
    )
    with pytest.raises(Cancelled):
        list(gen)
    assert len(calls) == 3


def test_one_to_many_needs_a_known_label_and_is_conditioned_by_it():
    model = fresh("one_to_many")
    with pytest.raises(InvalidInput, match="label"):
        run(model, "", max_new_tokens=5)
    with pytest.raises(InvalidInput, match="trained labels"):
        run(model, "", max_new_tokens=5, label="zzz")
    model.params["label_embedding.weight"][:] = [[3.0] * 5, [-3.0] * 5]
    x = run(model, "", max_new_tokens=8, temperature=0.0, label="x")[1].text
    y = run(model, "", max_new_tokens=8, temperature=0.0, label="y")[1].text
    assert x != y


def test_beam_search_scores_at_least_as_well_as_greedy():
    model = fresh("seq2seq", hidden_size=8)
    greedy, g_end = run(model, "abc", max_new_tokens=6, temperature=0.0)
    beam, b_end = run(model, "abc", max_new_tokens=6, beam_size=4)

    def mean(ts):
        return sum(t.logprob for t in ts) / max(len(ts), 1)

    assert b_end.finish_reason in ("eos", "length")
    assert mean(beam) >= mean(greedy) - 1e-9
    for t in beam:  # each logprob is the model's for that token after the ones before it
        assert t.logprob <= 0


def test_beam_search_logprobs_are_the_model_probabilities():
    model = fresh("seq2seq", hidden_size=8)
    beam, _ = run(model, "abc", max_new_tokens=4, beam_size=3)
    net, prefix = model.net, [2]
    for t in beam:
        logits, _ = net.decode(np.asarray([prefix]), net.encode(np.asarray([model.tokenizer.encode("abc")])))
        assert t.logprob == pytest.approx(float(log_softmax(logits[0, -1].astype(float))[t.id]), abs=1e-5)
        prefix.append(t.id)


def test_forecast_rollout_feeds_predictions_back():
    model = fresh("forecasting")
    series = list(np.sin(np.arange(20) / 4.0))
    tokens, end = run(model, series, max_new_tokens=3)
    values = [t.value for t in tokens]
    assert values == model.forecast(series, 3)
    assert values[1] == pytest.approx(model.predict([series + values[:1]])[0]["values"][0], rel=1e-5)


def test_classifier_cannot_generate_and_bad_configs_are_rejected():
    with pytest.raises(FailedPrecondition):
        fresh("classification").generate("abc")
    model = fresh("language_model")
    for bad in (dict(max_new_tokens=0), dict(temperature=-1.0), dict(top_p=0.0), dict(stop=[""])):
        with pytest.raises(InvalidInput):
            model.generate("the", GenerationConfig(**bad))
    with pytest.raises(InvalidInput, match="max_length"):
        fresh("language_model", max_length=3).generate("the cat")


def test_sampled_generation_steps_the_layers_and_never_reruns_the_forward_pass(monkeypatch):
    model = fresh("language_model")
    want = run(model, max_new_tokens=20, seed=4)[1].text

    def no_forward(*args, **kwargs):
        raise AssertionError("a short prompt and every new token go through the step() path")

    monkeypatch.setattr(model.net, "forward", no_forward)
    assert run(model, max_new_tokens=20, seed=4)[1].text == want


def test_generate_gives_the_batched_servers_tokens_among_other_requests():
    from rnn_engine.batched import GENERATE_ROWS, exact_min_rows, split_state, stack_states, step_logits
    from rnn_engine.batched_sampler import Sampler

    model = fresh("language_model", hidden_size=64)
    cases = [("the ", GenerationConfig(max_new_tokens=30, seed=s, temperature=1.5)) for s in range(6)]
    samplers = [Sampler(model, p, c) for p, c in cases]
    rows, got = exact_min_rows(model, GENERATE_ROWS), [[] for _ in cases]
    while not all(s.done for s in samplers):  # the scheduler's loop: advance all, then one batched step
        ready = []
        for i, s in enumerate(samplers):
            if not s.done:
                got[i] += [r.id for r in s.advance() if isinstance(r, GeneratedToken)]
                ready += [] if s.done else [s]
        if ready:
            logits, state = step_logits(model, np.array([s.token for s in ready]),
                                        stack_states([s.state for s in ready]), min_rows=rows)
            for s, row, st in zip(ready, logits, split_state(state), strict=True):
                s.feed(row, st)
    for (prompt, cfg), ids in zip(cases, got, strict=True):
        assert ids == [t.id for t in run(model, prompt, **vars(cfg))[0]]
    assert len({tuple(ids) for ids in got}) == len(cases)


@pytest.mark.parametrize("task", ["one_to_many", "seq2seq"])
def test_conditional_models_give_model_generate_tokens_alone_and_batched(task):
    """The decoder's StepPlan (dec_embedding table, decoder weights) steps several requests together."""
    from tests.engine.test_batched import run_batched

    model = fresh(task)
    label = model.labels[0] if task == "one_to_many" else None
    cases = [("ab", GenerationConfig(max_new_tokens=12, seed=s, temperature=1.2, label=label))
             for s in range(4)]
    together = run_batched(model, cases)
    for (prompt, cfg), got in zip(cases, together, strict=True):
        assert got == list(model.generate(prompt, cfg))


def test_a_stop_sequence_ending_inside_a_word_token_is_named_in_the_summary():
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import WordTokenizer

    tok = WordTokenizer.fit(["the cat sat on the mat"])
    model = Model(ModelConfig(hidden_size=16, num_layers=1, embedding_dim=8, seed=0), tokenizer=tok)
    model.params["head.bias"][tok.encode("mat")[0]] = 100.0  # greedy says "mat", " mat", ...
    records = list(model.generate("the", GenerationConfig(max_new_tokens=5, temperature=0.0,
                                                         stop=["xyz", "ma"])))
    end = records[-1]
    assert [r.text for r in records[:-1]] == [" mat"]
    assert (end.finish_reason, end.stop_sequence, end.text) == ("stop", "ma", " mat")
    unstopped = list(model.generate("the", GenerationConfig(max_new_tokens=2, temperature=0.0)))[-1]
    assert (unstopped.finish_reason, unstopped.stop_sequence) == ("length", "")
