"""rnn_engine.batched: a batched step equals the single-stream step row by row; Sampler = Model.generate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_engine.batched import (
    MIN_ROWS,
    StepPlan,
    exact_min_rows,
    split_state,
    split_stream_state,
    stack_states,
    stack_stream_states,
    step_logits,
)
from rnn_engine.batched_sampler import PROMPT_STEPS, Sampler, advance_all
from rnn_engine.config import GenerationConfig, ModelConfig
from rnn_engine.errors import FailedPrecondition, InvalidInput
from rnn_engine.generate import GeneratedToken, GenerationEnd, choose_rows
from rnn_engine.model import Model
from rnn_engine.tokenizers import CharTokenizer

TEXT = "the quick brown fox jumps over the lazy dog. THE END!\n"


def lm(cell="lstm", dtype="float32", seed=0, hidden=48) -> Model:
    cfg = ModelConfig(cell=cell, hidden_size=hidden, num_layers=2, embedding_dim=16, dtype=dtype, seed=seed)
    return Model(cfg, tokenizer=CharTokenizer.fit([TEXT]))


def run_batched(model, prompts_cfgs, max_rows: int = 16) -> list[list]:
    """Drive several Samplers as a scheduler does: advance all at once, then one batched step of those
    still running."""
    m0, plan = exact_min_rows(model, max_rows), StepPlan(model)
    samplers = [Sampler(model, p, c) for p, c in prompts_cfgs]
    records = [[] for _ in samplers]
    while True:
        going = [i for i, s in enumerate(samplers) if not s.done]
        for i, out in zip(going, advance_all([samplers[i] for i in going]), strict=True):
            assert not isinstance(out, BaseException)
            records[i] += out
        ready = [samplers[i] for i in going if not samplers[i].done]
        if not ready:
            return records
        ids = np.array([s.token for s in ready])
        state = stack_states([s.state for s in ready])
        logits, state = step_logits(model, ids, state, min_rows=m0, plan=plan)
        for s, row, row_state in zip(ready, logits, split_state(state), strict=True):
            s.feed(row, row_state)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_step_rows_do_not_depend_on_the_rest_of_the_batch(cell, rng):
    model = lm(cell)
    B, V = 16, model.tokenizer.vocab_size
    m0 = exact_min_rows(model, B)
    assert MIN_ROWS <= m0 <= B
    ids = rng.integers(4, V, size=B)
    h = rng.standard_normal((2, B, 48)).astype(np.float32)
    c = rng.standard_normal((2, B, 48)).astype(np.float32) if cell == "lstm" else None
    full, (hn, cn) = step_logits(model, ids, (h, c), min_rows=m0)
    assert full.shape == (B, V)
    for size in (1, 2, 3, 5, 7, 9):  # consecutive slices: every row at other positions with other neighbours
        for start in range(0, B, size):
            sl = slice(start, start + size)
            state = (h[:, sl], None if c is None else c[:, sl])
            part, (hp, cp) = step_logits(model, ids[sl], state, min_rows=m0)
            np.testing.assert_array_equal(part, full[sl])
            np.testing.assert_array_equal(hp, hn[:, sl])
            if c is not None:
                np.testing.assert_array_equal(cp, cn[:, sl])


def test_sampler_gives_model_generate_tokens_alone_and_in_a_batch():
    model = lm()
    free = list(model.generate("fox", GenerationConfig(max_new_tokens=40, seed=5)))[-1].text
    cases = [("the ", GenerationConfig(max_new_tokens=25, temperature=0.0, seed=1)),
             ("qu", GenerationConfig(max_new_tokens=30, temperature=1.0, seed=2)),
             ("", GenerationConfig(max_new_tokens=20, temperature=0.8, top_k=5, seed=3)),
             ("dog", GenerationConfig(max_new_tokens=40, top_p=0.9, repetition_penalty=1.3, seed=4)),
             ("fox", GenerationConfig(max_new_tokens=40, stop=[free[5:7]], seed=5)),
             ("x" * PROMPT_STEPS, GenerationConfig(max_new_tokens=20, seed=6))]  # prefilled in one pass
    together = run_batched(model, cases)
    for (prompt, cfg), got in zip(cases, together, strict=True):
        alone = run_batched(model, [(prompt, cfg)])[0]
        reference = list(model.generate(prompt, cfg))
        assert got == alone
        assert [r.id for r in got if isinstance(r, GeneratedToken)] == \
               [r.id for r in reference if isinstance(r, GeneratedToken)]
        assert got[-1].finish_reason == reference[-1].finish_reason
        assert got[-1].text == reference[-1].text
        assert isinstance(got[-1], GenerationEnd) and sum(isinstance(r, GenerationEnd) for r in got) == 1
    assert together[4][-1].finish_reason == "stop"


def test_stream_states_stack_and_split_back(rng):
    model = lm()
    states = [model.initial_state(1) for _ in range(3)]
    _, states[1] = model.predict_chunk(["the"], states[1])
    stacked = stack_stream_states(states)
    assert stacked["batch"] == 3 and stacked["rnn"][0].shape == (2, 3, 48)
    back = split_stream_state(stacked)
    for a, b in zip(states, back, strict=True):
        np.testing.assert_array_equal(a["rnn"][0], b["rnn"][0])
        np.testing.assert_array_equal(a["rnn"][1], b["rnn"][1])
        assert b["batch"] == 1 and b["seen"] == a["seen"]


def test_bad_inputs_are_named():
    model = lm()
    h = np.zeros((2, 2, 48), np.float32)
    with pytest.raises(InvalidInput, match="token_ids"):
        step_logits(model, np.array([1.5, 2.0]), (h, h))
    with pytest.raises(InvalidInput, match="token_ids: expected ids in"):
        step_logits(model, np.array([1, 999]), (h, h))
    with pytest.raises(InvalidInput, match="state"):
        step_logits(model, np.array([1, 2, 3]), (h, h))
    with pytest.raises(InvalidInput, match="states"):
        stack_states([])
    with pytest.raises(InvalidInput, match="config"):
        Sampler(model, "a", {"temperature": 0})
    with pytest.raises(InvalidInput, match="temperature"):
        Sampler(model, "a", GenerationConfig(temperature=-1.0))
    sampler = Sampler(model, "a", GenerationConfig(max_new_tokens=1))
    assert sampler.prefilling and sampler.advance() == []  # the prompt is fed first: no token yet


def test_step_plan_gives_the_step_of_a_plan_built_per_call(rng):
    model = lm()
    plan, m0 = StepPlan(model), exact_min_rows(model, 8)
    ids = rng.integers(4, model.tokenizer.vocab_size, size=5)
    h = rng.standard_normal((2, 5, 48)).astype(np.float32)
    c = rng.standard_normal((2, 5, 48)).astype(np.float32)
    kept, (hk, ck) = step_logits(model, ids, (h, c), min_rows=m0, plan=plan)
    fresh, (hf, cf) = step_logits(model, ids, (h, c), min_rows=m0)
    np.testing.assert_array_equal(kept, fresh)
    np.testing.assert_array_equal(hk, hf)
    np.testing.assert_array_equal(ck, cf)
    with pytest.raises(InvalidInput, match="plan: expected a StepPlan of this model, got StepPlan of anot"):
        step_logits(lm(seed=1), ids, (h, c), plan=plan)
    with pytest.raises(InvalidInput, match="plan: expected a StepPlan"):
        step_logits(model, ids, (h, c), plan="fast")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_plan_step_equals_the_network_forward_on_one_token(cell, rng):
    model = lm(cell, dtype="float64")
    ids = rng.integers(4, model.tokenizer.vocab_size, size=6)
    h = rng.standard_normal((2, 6, 48))
    c = rng.standard_normal((2, 6, 48)) if cell == "lstm" else None
    got, (hg, cg) = StepPlan(model).step(ids, (h, c))
    model.net.eval()
    want, (hw, cw) = model.net.forward(ids[:, None], None, (h, c))
    np.testing.assert_allclose(got, want[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(hg, hw, rtol=0, atol=1e-12)
    if c is not None:
        np.testing.assert_allclose(cg, cw, rtol=0, atol=1e-12)


def test_choose_rows_gives_each_row_what_it_gets_alone(rng):
    V = 40
    cfgs = [GenerationConfig(temperature=0.0), GenerationConfig(temperature=1.0),
            GenerationConfig(temperature=0.7, top_k=5), GenerationConfig(top_p=0.8),
            GenerationConfig(temperature=1.3, top_k=12, top_p=0.95, repetition_penalty=1.5)]
    for B in (1, 2, 7, 64):
        logits = (rng.standard_normal((B, V)) * 3).astype(np.float32)
        rows_cfg = [cfgs[i % len(cfgs)] for i in range(B)]
        hist = [list(rng.integers(4, V, size=i % 6)) for i in range(B)]
        ids, lps = choose_rows(logits, rows_cfg, hist, [np.random.default_rng(s) for s in range(B)])
        for b in range(B):
            alone = choose_rows(logits[b : b + 1], [rows_cfg[b]], [hist[b]], [np.random.default_rng(b)])
            assert (ids[b], lps[b]) == (alone[0][0], alone[1][0])
            assert ids[b] not in (0, 1, 2)  # pad, unk, bos never sampled
            z = logits[b].astype(np.float64)
            assert lps[b] == pytest.approx(z[ids[b]] - np.log(np.exp(z - z.max()).sum()) - z.max(), abs=1e-12)
        greedy = [b for b in range(B) if rows_cfg[b].temperature == 0.0 and not hist[b]]
        for b in greedy:
            assert ids[b] == int(np.argmax(np.where(np.arange(V) < 3, -np.inf, logits[b])))


def test_choose_rows_draws_follow_the_truncated_distribution():
    logits = np.log(np.array([[1e-9, 1e-9, 1e-9, 0.5, 0.3, 0.15, 0.05]] * 4000))
    rng = np.random.default_rng(0)
    ids, _ = choose_rows(logits, [GenerationConfig(top_k=2)] * 4000, [[]] * 4000, [rng] * 4000)
    counts = np.bincount(ids, minlength=7)
    assert counts[5:].sum() == 0 and counts[:3].sum() == 0
    assert counts[3] / 4000 == pytest.approx(0.5 / 0.8, abs=0.03)  # renormalised over the two kept ids


def test_advance_all_hands_each_failure_to_its_own_request():
    model = lm()
    plan = StepPlan(model)

    def broken():
        raise RuntimeError("client went away")

    good = Sampler(model, "", GenerationConfig(max_new_tokens=3, seed=0))
    bad = Sampler(model, "", GenerationConfig(max_new_tokens=3, seed=0), should_stop=broken)
    for s in (good,):
        while s.prefilling:
            logits, state = step_logits(model, [s.token], s.state, plan=plan)
            s.feed(logits[0], state)
    out = advance_all([good, bad])
    assert isinstance(out[1], RuntimeError) and not isinstance(out[0], BaseException)
    assert isinstance(out[0][0], GeneratedToken)
    finished = Sampler(model, "", GenerationConfig(max_new_tokens=1))
    finished.done = True
    (err,) = advance_all([finished])
    assert isinstance(err, FailedPrecondition) and "finished" in str(err)


def test_a_step_plan_is_a_frozen_copy_of_the_model():
    model = lm("gru")
    plan = StepPlan(model)
    ids, h = np.array([4, 5]), np.zeros((2, 2, 48), np.float32)
    before = plan.step(ids, (h, None))[0].copy()
    for module in model.net.modules.values():
        for p in module.params.values():
            p *= 0.5
    np.testing.assert_array_equal(plan.step(ids, (h, None))[0], before)
    assert not np.array_equal(StepPlan(model).step(ids, (h, None))[0], before)


_ROW_CONFIG = st.builds(
    GenerationConfig,
    temperature=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    top_k=st.integers(0, 12),
    top_p=st.sampled_from([1.0, 0.95, 0.5, 0.05]),
    repetition_penalty=st.sampled_from([1.0, 1.3]),
)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), V=st.integers(5, 60), B=st.integers(1, 20))
def test_choose_rows_is_row_independent_for_random_batches(data, V, B):
    """Any batch of rows, settings, histories and seeds: each row alone gets the same id and logprob, and
    the id is a kept one (not pad/unk/bos, within top_k when set)."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((B, V)) * data.draw(st.sampled_from([0.1, 1.0, 10.0]))).astype(np.float32)
    cfgs = data.draw(st.lists(_ROW_CONFIG, min_size=B, max_size=B))
    hist = [list(rng.integers(0, V, size=int(rng.integers(0, 5)))) for _ in range(B)]
    ids, lps = choose_rows(logits, cfgs, hist, [np.random.default_rng(seed + b) for b in range(B)])
    for b in range(B):
        alone = choose_rows(logits[b : b + 1], [cfgs[b]], [hist[b]], [np.random.default_rng(seed + b)])
        assert (ids[b], lps[b]) == (alone[0][0], alone[1][0])
        assert 3 <= ids[b] < V
        if cfgs[b].top_k and cfgs[b].repetition_penalty == 1.0 and cfgs[b].temperature > 0:
            z = logits[b].astype(np.float64)
            z[:3] = -np.inf
            rank = int((z > z[ids[b]]).sum())  # ids ranked above the chosen one
            assert rank < cfgs[b].top_k


def _rows_alone(plan, ids, h, c):
    """Each row of a batch stepped by itself (its own single-row state)."""
    out = [plan.run_streams(ids[b : b + 1], [(h[:, b : b + 1], None if c is None else c[:, b : b + 1])])
           for b in range(len(ids))]
    return np.concatenate([o[0] for o in out]), [o[1][0] for o in out]


@pytest.mark.parametrize("B", [1, 2, 7, 64])
def test_deterministic_plan_gives_every_row_its_lone_result_in_any_batch(B, rng):
    model = lm()
    plan = StepPlan(model, deterministic=True, max_rows=64)
    ids = rng.integers(4, model.tokenizer.vocab_size, size=B)
    h, c = (rng.standard_normal((2, B, 48)).astype(np.float32) for _ in range(2))
    together, states = plan.run_streams(ids, [(h[:, b : b + 1], c[:, b : b + 1]) for b in range(B)])
    alone, alone_states = _rows_alone(StepPlan(model, deterministic=True, max_rows=64), ids, h, c)
    np.testing.assert_array_equal(together, alone)
    for (hb, cb), (ha, ca) in zip(states, alone_states, strict=True):
        np.testing.assert_array_equal(hb, ha)
        np.testing.assert_array_equal(cb, ca)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_default_plan_gives_every_row_its_lone_result_below_the_crossover(cell, rng):
    model = lm(cell)
    plan = StepPlan(model, gemv_rows=8)  # batches of 1..7 rows run row by row
    c = None
    for B in (1, 2, 5, 7):
        ids = rng.integers(4, model.tokenizer.vocab_size, size=B)
        h = rng.standard_normal((2, B, 48)).astype(np.float32)
        c = rng.standard_normal((2, B, 48)).astype(np.float32) if cell == "lstm" else None
        together, (hn, cn) = plan.run(ids, (h, c))
        alone, states = _rows_alone(StepPlan(model, gemv_rows=8), ids, h, c)
        np.testing.assert_array_equal(together, alone)
        np.testing.assert_array_equal(hn, np.concatenate([s[0] for s in states], axis=1))
        # the lone row is the batch-of-one kernel, and agrees with the one-product kernel up to rounding
        wide, _ = plan.kernel(ids, (h, c))
        np.testing.assert_allclose(together, wide, rtol=1e-5, atol=1e-5)


def test_the_crossover_is_probed_once_per_shape_and_is_a_batch_size():
    model = lm()
    first = StepPlan(model, max_rows=16).gemv_rows
    assert 2 <= first <= 17
    assert StepPlan(lm(seed=3), max_rows=16).gemv_rows == first  # same shape: cached, not re-timed
    with pytest.raises(InvalidInput, match="gemv_rows"):
        StepPlan(model, gemv_rows=0)
    with pytest.raises(InvalidInput, match="deterministic"):
        StepPlan(model, deterministic="yes")


def test_model_generate_deterministic_gives_the_padded_batch_tokens():
    model = lm()
    cfg = GenerationConfig(max_new_tokens=20, temperature=0.9, seed=4)
    det = list(model.generate("the ", cfg, deterministic=True))
    assert det == run_batched(model, [("the ", cfg)], max_rows=64)[0]
    assert det == list(model.generate("the ", cfg, deterministic=True))
