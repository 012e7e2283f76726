"""`step` (the generation fast path) computes exactly what `forward` computes one step at a time."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnn_engine import no_grad
from rnn_engine.errors import InvalidInput
from tests.engine.recurrent_cases import KINDS, make_engine

I, H, T, B = 3, 5, 6, 2


def _state(m, kind, rng):
    shape = (m.num_layers, B, H)
    h = rng.standard_normal(shape)
    return (h, rng.standard_normal(shape)) if kind == "lstm" else h


GRID = list(itertools.product(KINDS, (1, 2), (True, False)))


@pytest.mark.parametrize("frozen", [False, True], ids=["views", "step_weights"])
@pytest.mark.parametrize(("kind", "num_layers", "bias"), GRID)
def test_chained_steps_equal_the_full_sequence_forward(kind, num_layers, bias, frozen):
    """On the parameters' views, or on `step_weights()` copies (then also with layer 0's input projected
    through `input_table`, every row of x standing for a token)."""
    m = make_engine(kind, I, H, num_layers=num_layers, bias=bias, dtype=np.float64, seed=3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, I))
    state0 = _state(m, kind, rng)
    weights = m.step_weights() if frozen else None
    with no_grad():
        out, final = m(x, state0)
        ys, state = [], state0
        for t in range(T):
            y, state = m.step(x[t], state, weights)
            ys.append(y)
        if frozen:
            y_proj, _ = m.step(None, state0, weights, xw=weights.input_table(x[0]))
            np.testing.assert_allclose(y_proj, out[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.stack(ys), out, rtol=0, atol=1e-12)
    pairs = zip(state, final, strict=True) if kind == "lstm" else [(state, final)]
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_step_from_zero_state_matches_forward_without_state_and_keeps_the_backward_cache(kind):
    m = make_engine(kind, I, H, num_layers=2, dtype=np.float64, seed=5)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, B, I))
    out, _ = m(x)
    d_out = rng.standard_normal(out.shape)
    y, _ = m.step(x[0])  # outside no_grad too: step never caches and never clears the forward's cache
    np.testing.assert_allclose(y, out[0], rtol=0, atol=1e-12)
    dx = m.backward(d_out)[0]
    m(x)
    np.testing.assert_allclose(m.backward(d_out)[0], dx, rtol=0, atol=1e-12)


def test_step_sees_in_place_parameter_updates():
    """No weight-derived cache survives a call: an optimizer's in-place update shows up in the next step."""
    m = make_engine("lstm", I, H, dtype=np.float64, seed=7)
    x = np.ones((B, I))
    before, _ = m.step(x)
    for p in m.params.values():
        p *= 0.5
    after, _ = m.step(x)
    with no_grad():
        ref = m(x[None])[0][0]
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("x", "state", "message"),
    [
        (np.zeros((B, I + 1)), None, "x: expected shape"),
        (np.zeros((1, B, I)), None, "x: expected a 2-D array"),
        (np.full((B, I), np.nan), None, "x: contains NaN"),
        (np.zeros((B, I)), np.zeros((2, B, H)), "h0: expected shape"),
    ],
)
def test_step_rejects_bad_inputs_with_a_named_message(x, state, message):
    m = make_engine("gru", I, H, seed=0)
    with pytest.raises(InvalidInput, match=message):
        m.step(x, state)


def test_step_rejects_bidirectional_layers():
    m = make_engine("tanh", I, H, bidirectional=True, seed=0)
    with pytest.raises(InvalidInput, match="step: expected a unidirectional layer"):
        m.step(np.zeros((B, I)))


@pytest.mark.parametrize("kind", KINDS)
def test_forward_sees_in_place_parameter_updates(kind):
    """The forward's scaled, transposed weight copies are rebuilt per call, never served stale."""
    m = make_engine(kind, I, H, num_layers=2, dtype=np.float64, seed=8)
    x = np.random.default_rng(9).standard_normal((T, B, I))
    before = m(x)[0].copy()
    for p in m.params.values():
        p *= 0.5
    fresh = make_engine(kind, I, H, num_layers=2, dtype=np.float64, seed=0)
    fresh.load_state_dict(m.state_dict())
    after = m(x)[0]
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, fresh(x)[0], rtol=0, atol=1e-12)


def test_step_weights_are_copies_that_must_be_rebuilt_after_an_update():
    m = make_engine("gru", I, H, dtype=np.float64, seed=7)
    x = np.ones((B, I))
    weights = m.step_weights()
    before, _ = m.step(x, None, weights)
    for p in m.params.values():
        p *= 0.5
    np.testing.assert_array_equal(m.step(x, None, weights)[0], before)  # frozen: documented
    np.testing.assert_allclose(m.step(x, None, m.step_weights())[0], m.step(x)[0], rtol=0, atol=1e-12)


def test_step_weights_and_projected_inputs_are_validated():
    m = make_engine("lstm", I, H, seed=0)
    other = make_engine("lstm", I, H, seed=0)
    w = m.step_weights()
    G = 4 * H
    other_layer = r"weights: expected this layer's step_weights\(\), got StepWeights of another layer"
    with pytest.raises(InvalidInput, match=other_layer):
        m.step(np.zeros((B, I)), None, other.step_weights())
    with pytest.raises(InvalidInput, match="weights: expected this layer's step_weights\\(\\), got dict"):
        m.step(np.zeros((B, I)), None, {})
    with pytest.raises(InvalidInput, match="xw: a precomputed input projection needs weights"):
        m.step(None, None, None, xw=np.zeros((B, G)))
    with pytest.raises(InvalidInput, match=f"xw: expected shape \\(B >= 1, {G}\\)"):
        m.step(None, None, w, xw=np.zeros((B, G + 1)))
    with pytest.raises(InvalidInput, match=f"embedding: expected shape \\(V, {I}\\)"):
        w.input_table(np.zeros((7, I + 2)))
    with pytest.raises(InvalidInput, match="step_weights: expected a unidirectional layer"):
        make_engine("tanh", I, H, bidirectional=True, seed=0).step_weights()


@pytest.mark.parametrize("kind", KINDS)
def test_a_frozen_layer_serves_the_same_inference_from_kept_copies(kind):
    m = make_engine(kind, I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=11)
    x = np.random.default_rng(12).standard_normal((T, 16, I))  # T*B >= COPY_MIN_ROWS: the copying path
    with no_grad():
        fresh = m(x)[0]
        m.freeze()
        assert m.frozen
        np.testing.assert_array_equal(m(x)[0], fresh)  # the same copies, kept: bit-identical
        for p in m.params.values():
            p *= 0.5  # in place, as an optimizer would: inference does not see it while frozen (documented)
        np.testing.assert_array_equal(m(x)[0], fresh)
    trained = m(x)[0]  # outside no_grad (training) the copies are never used
    m.unfreeze()
    with no_grad():
        halved = m(x)[0]
    np.testing.assert_array_equal(trained, halved)
    assert not np.allclose(halved, fresh)


def test_freezing_follows_the_layers_own_parameter_loads_and_shares_copies_with_steps():
    m = make_engine("lstm", I, H, num_layers=2, dtype=np.float64, seed=13).freeze()
    other = make_engine("lstm", I, H, num_layers=2, dtype=np.float64, seed=14)
    m.load_state_dict(other.state_dict())
    x = np.random.default_rng(15).standard_normal((T, 16, I))
    with no_grad():
        np.testing.assert_array_equal(m(x)[0], other(x)[0])
    w = m.step_weights()
    assert w.layers[0][1] is m.step_weights().layers[0][1]  # no new copy per call while frozen
