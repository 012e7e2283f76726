"""Behaviour of RNN/LSTM/GRU: stepping, truncated BPTT, no_grad, train/eval dropout, random layouts.

- running T single steps while carrying (h, c) equals one forward over T;
- two chunks with a carried state, back-propagated chunk by chunk through dh0, equal one full BPTT;
- `no_grad()` gives the same outputs and leaves nothing for `backward`;
- dropout acts only in training and only between layers;
- hypothesis: random sizes, lengths and layouts agree with PyTorch (skipped without torch).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_engine.backend import no_grad
from rnn_engine.errors import InvalidInput
from tests.engine.recurrent_cases import (
    KINDS,
    make_engine,
    make_torch_twin,
    max_abs_diff,
    run_engine,
    run_torch,
    upstream_grads,
)

I, H, T, B = 3, 4, 6, 2
try:  # the oracle for the random-layout property only; every other test here runs without it
    import torch  # noqa: F401

    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False


def _state(m, rng, batch=B):
    return rng.standard_normal((m.num_layers * m.num_directions, batch, m.hidden_size))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
def test_single_steps_carrying_state_equal_one_full_forward(kind, num_layers, batch_first, rng):
    m = make_engine(kind, I, H, num_layers=num_layers, batch_first=batch_first, dtype=np.float64, seed=0)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0, c0 = _state(m, rng), _state(m, rng) if kind == "lstm" else None
    full = run_engine(m, kind, x, h0, c0)
    h, c, outs = h0, c0, []
    for t in range(T):
        step = run_engine(m, kind, x[:, t : t + 1] if batch_first else x[t : t + 1], h, c)
        outs.append(step["output"])
        h, c = step["h_n"], step["c_n"]
    stepped = np.concatenate(outs, axis=1 if batch_first else 0)
    np.testing.assert_allclose(stepped, full["output"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(h, full["h_n"], rtol=0, atol=1e-14)
    if kind == "lstm":
        np.testing.assert_allclose(c, full["c_n"], rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_truncated_bptt_through_carried_state_equals_full_bptt(kind, num_layers, rng):
    m = make_engine(kind, I, H, num_layers=num_layers, dtype=np.float64, seed=0)
    x, h0 = rng.standard_normal((T, B, I)), _state(m, rng)
    c0 = _state(m, rng) if kind == "lstm" else None
    go, gh, gc = upstream_grads(m, (T, B, H), B, rng)
    full = run_engine(m, kind, x, h0, c0, cotangents=(go, gh, gc))

    split = T // 2
    first = run_engine(m, kind, x[:split], h0, c0)
    # the second chunk starts from the carried state; its backward returns dh0 (and dc0) for that state
    second = run_engine(m, kind, x[split:], first["h_n"], first["c_n"], cotangents=(go[split:], gh, gc))
    assert second["dh0"].shape == h0.shape
    assert np.abs(second["dh0"]).max() > 0
    # the first chunk's forward is re-run (the layer caches one forward) and receives dh0 as its d_h_n
    first = run_engine(m, kind, x[:split], h0, c0, cotangents=(go[:split], second["dh0"], second["dc0"]))

    np.testing.assert_allclose(np.concatenate([first["dx"], second["dx"]]), full["dx"], atol=1e-13)
    np.testing.assert_allclose(first["dh0"], full["dh0"], atol=1e-13)
    if kind == "lstm":
        np.testing.assert_allclose(first["dc0"], full["dc0"], atol=1e-13)
    for name, g in full["grads"].items():
        np.testing.assert_allclose(first["grads"][name] + second["grads"][name], g, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_no_grad_forward_matches_and_backward_then_raises(kind, rng):
    m = make_engine(kind, I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x, lengths = rng.standard_normal((T, B, I)), np.array([T, 3])
    normal = run_engine(m, kind, x, lengths=lengths)
    with no_grad():
        inference = run_engine(m, kind, x, lengths=lengths)
    np.testing.assert_array_equal(inference["output"], normal["output"])
    np.testing.assert_array_equal(inference["h_n"], normal["h_n"])
    with pytest.raises(InvalidInput, match=r"backward: no forward pass.*no_grad"):
        m.backward(np.ones_like(normal["output"]))


@pytest.mark.parametrize("kind", KINDS)
def test_backward_before_any_forward_raises(kind):
    m = make_engine(kind, I, H, dtype=np.float64, seed=0)
    with pytest.raises(InvalidInput, match="call forward first"):
        m.backward(np.ones((T, B, H)))


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_changes_training_outputs_and_eval_disables_it(kind, rng):
    m = make_engine(kind, I, H, num_layers=2, dropout=0.5, dtype=np.float64, seed=0)
    plain = make_engine(kind, I, H, num_layers=2, dropout=0.0, dtype=np.float64, seed=1)
    plain.load_state_dict(m.state_dict())
    x = rng.standard_normal((T, B, I))
    reference = run_engine(plain, kind, x)["output"]

    train_a, train_b = run_engine(m, kind, x)["output"], run_engine(m, kind, x)["output"]
    assert not np.allclose(train_a, reference)
    assert not np.allclose(train_a, train_b), "each training forward draws a fresh mask"

    m.eval()
    np.testing.assert_array_equal(run_engine(m, kind, x)["output"], reference)
    m.train()
    assert not np.allclose(run_engine(m, kind, x)["output"], reference)


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_never_touches_a_single_layer(kind, rng):
    m = make_engine(kind, I, H, num_layers=1, dropout=0.5, dtype=np.float64, seed=0)
    x = rng.standard_normal((T, B, I))
    train_out = run_engine(m, kind, x)["output"]
    np.testing.assert_array_equal(train_out, run_engine(m.eval(), kind, x)["output"])


# -------------------------------------------------------------------------------- random layouts vs PyTorch
@st.composite
def layouts(draw):
    """A random configuration, input and (sometimes) lengths and initial state."""
    kind = draw(st.sampled_from(KINDS))
    cfg = dict(
        input_size=draw(st.integers(1, 5)), hidden_size=draw(st.integers(1, 5)),
        num_layers=draw(st.integers(1, 3)), bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()), bias=draw(st.booleans()),
    )
    steps, batch = draw(st.integers(1, 7)), draw(st.integers(1, 4))
    lengths = draw(st.none() | st.lists(st.integers(1, steps), min_size=batch, max_size=batch).map(np.array))
    return kind, cfg, steps, batch, lengths, draw(st.booleans()), draw(st.integers(0, 2**16))


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch (the reference oracle) is not installed")
@settings(max_examples=25, deadline=None)
@given(layouts())
def test_random_layouts_match_torch(layout):
    kind, cfg, steps, batch, lengths, with_h0, seed = layout
    rng = np.random.default_rng(seed)
    cfg = dict(cfg)
    m = make_engine(kind, cfg.pop("input_size"), cfg.pop("hidden_size"), dtype=np.float64, seed=seed, **cfg)
    tm = make_torch_twin(m, kind)
    x = rng.standard_normal((batch, steps, m.input_size) if m.batch_first else (steps, batch, m.input_size))
    h0 = _state(m, rng, batch) if with_h0 else None
    c0 = _state(m, rng, batch) if with_h0 and kind == "lstm" else None
    D = m.num_directions
    out_shape = (batch, steps, D * m.hidden_size) if m.batch_first else (steps, batch, D * m.hidden_size)
    cot = upstream_grads(m, out_shape, batch, rng)
    ours, ref = run_engine(m, kind, x, h0, c0, lengths, cot), run_torch(tm, kind, x, h0, c0, lengths, cot)
    diffs = max_abs_diff(ours, ref)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] < 1e-9, f"{worst} differs by {diffs[worst]:.3e} for {layout}"
