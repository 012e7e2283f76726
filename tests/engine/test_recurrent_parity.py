"""The engine's RNN/LSTM/GRU give PyTorch's outputs, final states and gradients for the same weights.

Grid: every kind (tanh RNN, relu RNN, LSTM, GRU) x 1-2 layers x 1-2 directions x with/without lengths x
with/without an initial state, in float64 (max abs difference < 1e-9) and float32 (< 1e-5); plus batch_first,
real torch state_dicts loaded unchanged, and the initialisation schemes' statistics.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tests.engine.recurrent_cases import (
    KIND_LAYOUTS,
    KINDS,
    force_lstm_columns,
    make_engine,
    make_torch_twin,
    max_abs_diff,
    run_engine,
    run_torch,
    upstream_grads,
)

torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle for these parity tests")
pytestmark = pytest.mark.torch

I, H, T, B = 3, 4, 5, 3
LENGTHS = np.array([5, 2, 4])  # unsorted on purpose: exercises enforce_sorted=False
TOLERANCE = {np.float64: 1e-9, np.float32: 1e-5}

GRID = list(itertools.product(KINDS, (1, 2), (False, True), (False, True), (False, True)))
GRID_IDS = [f"{k}-L{L}-{'bi' if bi else 'uni'}-{'len' if ln else 'full'}-{'h0' if h0 else 'zero'}"
            for k, L, bi, ln, h0 in GRID]


def _compare(kind, num_layers, bidirectional, with_lengths, with_h0, dtype, batch_first=False, seed=0):
    """Run one configuration through both implementations; returns {key: max abs difference}."""
    m = make_engine(kind, I, H, num_layers=num_layers, bidirectional=bidirectional,
                    batch_first=batch_first, dtype=dtype, seed=seed)
    tm = make_torch_twin(m, kind)
    rng = np.random.default_rng(seed + 100)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    h0 = rng.standard_normal((num_layers * D, B, H)).astype(dtype) if with_h0 else None
    c0 = rng.standard_normal((num_layers * D, B, H)).astype(dtype) if with_h0 and kind == "lstm" else None
    lengths = LENGTHS if with_lengths else None
    out_shape = (B, T, D * H) if batch_first else (T, B, D * H)
    cot = upstream_grads(m, out_shape, B, rng)
    ours = run_engine(m, kind, x, h0, c0, lengths, cot)
    ref = run_torch(tm, kind, x, h0, c0, lengths, cot)
    return max_abs_diff(ours, ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", GRID, ids=GRID_IDS)
def test_outputs_states_and_gradients_match_torch(case, dtype):
    kind, num_layers, bidirectional, with_lengths, with_h0 = case
    diffs = _compare(kind, num_layers, bidirectional, with_lengths, with_h0, dtype)
    assert "dx" in diffs and any(k.startswith("grad:") for k in diffs)
    if with_h0:
        assert "dh0" in diffs and ("dc0" in diffs) == (kind == "lstm")
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] < TOLERANCE[dtype], f"{worst} differs by {diffs[worst]:.3e}: {diffs}"


LSTM_GRID = [c for c in GRID if c[0] == "lstm"]
LSTM_IDS = [i for c, i in zip(GRID, GRID_IDS, strict=True) if c[0] == "lstm"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", LSTM_GRID, ids=LSTM_IDS)
def test_lstm_column_layout_matches_torch(case, dtype, monkeypatch):
    """The same grid through the column-layout LSTM (training and inference of B >= 8 in real use)."""
    force_lstm_columns(monkeypatch)
    assert make_engine("lstm", I, H)._lstm_columns_apply(T, B)
    test_outputs_states_and_gradients_match_torch(case, dtype)


@pytest.mark.parametrize(("kind", "layout"), KIND_LAYOUTS)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "len"])
def test_batch_first_matches_torch(kind, with_lengths, layout, monkeypatch):
    if layout == "columns":
        force_lstm_columns(monkeypatch)
    diffs = _compare(kind, 2, True, with_lengths, True, np.float64, batch_first=True)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] < 1e-9, f"{worst} differs by {diffs[worst]:.3e}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_torch_state_dict_loads_unchanged_and_gives_torch_outputs(kind, bias):
    torch.manual_seed(7)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind, torch.nn.RNN)
    extra = {} if kind in ("lstm", "gru") else {"nonlinearity": kind}
    tm = cls(I, H, num_layers=2, bidirectional=True, bias=bias, dtype=torch.float64, **extra)
    state = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    m = make_engine(kind, I, H, num_layers=2, bidirectional=True, bias=bias, dtype=np.float64, seed=0)
    m.load_state_dict(state)
    assert list(m.state_dict()) == list(tm.state_dict())
    for k, v in state.items():
        np.testing.assert_array_equal(m.params[k], v)
    x = np.random.default_rng(3).standard_normal((T, B, I))
    ours = run_engine(m, kind, x)
    ref = run_torch(tm, kind, x)
    diffs = max_abs_diff(ours, ref)
    assert max(diffs.values()) < 1e-12, diffs


@pytest.mark.parametrize("kind", KINDS)
def test_default_init_is_uniform_within_one_over_sqrt_hidden(kind):
    hidden = 64
    m = make_engine(kind, 16, hidden, num_layers=2, dtype=np.float64, seed=0)
    bound = 1.0 / math.sqrt(hidden)
    values = np.concatenate([p.ravel() for p in m.params.values()])
    assert np.abs(values).max() <= bound
    # U(-b, b): mean 0, variance b^2 / 3; ~20k samples keep these loose bounds safe
    assert abs(values.mean()) < 0.05 * bound
    assert values.var() == pytest.approx(bound**2 / 3, rel=0.05)
    assert np.abs(values).max() > 0.95 * bound


def test_identity_init_gives_identity_recurrent_weights_for_relu_rnn():
    m = make_engine("relu", 5, 8, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, init="identity")
    for name, p in m.params.items():
        if name.startswith("weight_hh"):
            np.testing.assert_array_equal(p, np.eye(8))
        elif name.startswith("bias"):
            np.testing.assert_array_equal(p, 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_orthogonal_init_gives_orthonormal_gate_blocks(kind):
    hidden = 6
    m = make_engine(kind, 3, hidden, num_layers=2, dtype=np.float64, seed=0, init="orthogonal")
    for name, p in m.params.items():
        if name.startswith("weight_hh"):
            blocks = p.reshape(-1, hidden, hidden)
            assert len(blocks) == m.gate_count
            for w in blocks:
                np.testing.assert_allclose(w @ w.T, np.eye(hidden), atol=1e-12)
            assert not np.allclose(blocks[0], np.eye(hidden))


def test_lstm_forget_bias_sets_only_the_forget_block():
    hidden = 5
    m = make_engine("lstm", 3, hidden, num_layers=2, bidirectional=True, dtype=np.float64, seed=0,
                    forget_bias=1.0)
    for name, p in m.params.items():
        if name.startswith("bias_ih"):
            np.testing.assert_array_equal(p[hidden : 2 * hidden], 1.0)
        elif name.startswith("bias_hh"):
            np.testing.assert_array_equal(p[hidden : 2 * hidden], 0.0)
        if name.startswith("bias"):
            other = np.concatenate([p[:hidden], p[2 * hidden :]])
            assert np.abs(other).max() <= 1 / math.sqrt(hidden) and np.abs(other).max() > 0
