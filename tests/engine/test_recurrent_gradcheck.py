"""Hand-written BPTT agrees with central finite differences (float64, relative error < 1e-6).

Every parameter, the input and the initial state (h0, and c0 for LSTM) are checked for every layer kind,
1-2 layers, 1-2 directions, with/without lengths and with/without h0; the scalar loss is a random linear
functional of output, h_n (and c_n). ReLU inputs are chosen so no pre-activation sits near the kink at 0.
Dropout between layers is checked with its mask held fixed by re-seeding the layer's generator.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.engine.gradcheck import numeric_grad, rel_error
from tests.engine.recurrent_cases import (
    KIND_LAYOUTS,
    KINDS,
    force_lstm_columns,
    make_engine,
    run_engine,
    upstream_grads,
)

I, H, T, B = 3, 4, 4, 2
LENGTHS = np.array([2, 4])
TOLERANCE = 1e-6
# Central-difference step: round-off in the O(1) loss costs ~1e-16 / EPS absolute and truncation ~EPS^2
# relative; at 1e-6 round-off alone reaches 2e-6 relative on the small W_hh gradients of zero-h0 cases.
EPS = 1e-5
DROP_SEED = 11
RELU_MARGIN = 1e-3  # |pre-activation| floor; a finite-difference step moves them by ~1e-4 at most

GRID = list(itertools.product(KINDS, (1, 2), (False, True), (False, True), (False, True)))
GRID_IDS = [f"{k}-L{L}-{'bi' if bi else 'uni'}-{'len' if ln else 'full'}-{'h0' if h0 else 'zero'}"
            for k, L, bi, ln, h0 in GRID]


def relu_reference(m, x, h0, lengths, drop_rng=None) -> tuple[np.ndarray, float]:
    """An independent ReLU RNN forward: (output (T, B, D*H), smallest |W_ih x + b_ih + W_hh h + b_hh|).

    Only real steps count (padding outputs zeros and leaves the state alone, as in packed sequences).
    With `drop_rng`, layer inputs after the first are masked as the layer does in training: one uniform draw
    per element of the (T, B, D*H) input, kept where >= dropout, scaled by 1 / (1 - dropout).
    """
    D, L = m.num_directions, m.num_layers
    Tn, Bn = x.shape[:2]
    lens = np.full(Bn, Tn) if lengths is None else np.asarray(lengths)
    h0 = np.zeros((L * D, Bn, m.hidden_size)) if h0 is None else h0
    inp, smallest = x, np.inf
    for k in range(L):
        if k > 0 and drop_rng is not None:
            inp = inp * (drop_rng.random(inp.shape) >= m.dropout) / (1.0 - m.dropout)
        outs = []
        for d, s in enumerate(["", "_reverse"][:D]):
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            p = {n: m.params.get(f"{n}_l{k}{s}", 0.0) for n in names}  # no biases: 0
            out = np.zeros((Tn, Bn, m.hidden_size))
            for b in range(Bn):
                h = h0[k * D + d, b]
                steps = range(lens[b] - 1, -1, -1) if d else range(lens[b])
                for t in steps:
                    pre = p["weight_ih"] @ inp[t, b] + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
                    smallest = min(smallest, float(np.abs(pre).min()))
                    h = out[t, b] = np.maximum(pre, 0.0)
            outs.append(out)
        inp = np.concatenate(outs, axis=-1)
    return inp, smallest


def draw_inputs(m, kind, with_lengths, with_h0, seed, drop_seed=None):
    """x, h0, c0 for one case; for ReLU, the first seed whose pre-activations all clear RELU_MARGIN."""
    D, L = m.num_directions, m.num_layers
    lengths = LENGTHS if with_lengths else None
    for attempt in range(50):
        rng = np.random.default_rng([seed, attempt])
        x = rng.standard_normal((T, B, I))
        h0 = rng.standard_normal((L * D, B, H)) if with_h0 else None
        c0 = rng.standard_normal((L * D, B, H)) if with_h0 and kind == "lstm" else None
        if kind != "relu":
            return x, h0, c0, lengths, rng
        drop_rng = None if drop_seed is None else np.random.default_rng(drop_seed)
        expected, margin = relu_reference(m, x, h0, lengths, drop_rng)
        if drop_seed is not None:
            m.rng = np.random.default_rng(drop_seed)
        # the margin is only meaningful if the reference computes the very function under test
        np.testing.assert_allclose(run_engine(m, kind, x, h0, None, lengths)["output"], expected, atol=1e-12)
        if margin > RELU_MARGIN:
            return x, h0, c0, lengths, rng
    raise AssertionError("no ReLU input clears the kink margin in 50 draws")  # pragma: no cover


def check_all_gradients(m, kind, x, h0, c0, lengths, cot, before_forward=lambda: None) -> dict[str, float]:
    """Relative error of the analytic gradient of sum(cot * outputs) for every parameter, x, h0 and c0."""
    go, gh, gc = cot

    def loss() -> float:
        before_forward()
        r = run_engine(m, kind, x, h0, c0, lengths)
        total = np.sum(go * r["output"]) + np.sum(gh * r["h_n"])
        return float(total + (np.sum(gc * r["c_n"]) if kind == "lstm" else 0.0))

    before_forward()
    analytic = run_engine(m, kind, x, h0, c0, lengths, cot)
    errors = {name: rel_error(analytic["grads"][name], numeric_grad(loss, p, EPS))
              for name, p in m.params.items()}
    errors["x"] = rel_error(analytic["dx"], numeric_grad(loss, x, EPS))
    if h0 is not None:
        errors["h0"] = rel_error(analytic["dh0"], numeric_grad(loss, h0, EPS))
    if c0 is not None:
        errors["c0"] = rel_error(analytic["dc0"], numeric_grad(loss, c0, EPS))
    return errors


@pytest.mark.parametrize("case", GRID, ids=GRID_IDS)
def test_bptt_matches_finite_differences(case):
    kind, num_layers, bidirectional, with_lengths, with_h0 = case
    m = make_engine(kind, I, H, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64, seed=1)
    x, h0, c0, lengths, rng = draw_inputs(m, kind, with_lengths, with_h0, seed=2)
    cot = upstream_grads(m, (T, B, m.num_directions * H), B, rng)
    errors = check_all_gradients(m, kind, x, h0, c0, lengths, cot)
    states = {"h0", "c0"} if kind == "lstm" else {"h0"}
    expected = set(m.params) | {"x"} | (states if with_h0 else set())
    assert set(errors) == expected
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"{worst}: relative error {errors[worst]:.3e} (all: {errors})"


@pytest.mark.parametrize("case", [c for c in GRID if c[0] == "lstm"],
                         ids=[i for c, i in zip(GRID, GRID_IDS, strict=True) if c[0] == "lstm"])
def test_lstm_column_layout_bptt_matches_finite_differences(case, monkeypatch):
    """The same check through the column-layout LSTM (training of B >= 8 in real use)."""
    force_lstm_columns(monkeypatch)
    assert make_engine("lstm", I, H)._lstm_columns_apply(T, B)
    test_bptt_matches_finite_differences(case)


@pytest.mark.parametrize(("kind", "layout"), KIND_LAYOUTS)
def test_bptt_with_fixed_dropout_mask_matches_finite_differences(kind, layout, monkeypatch):
    if layout == "columns":
        force_lstm_columns(monkeypatch)
    m = make_engine(kind, I, H, num_layers=2, bidirectional=True, dropout=0.4, dtype=np.float64, seed=1)
    x, h0, c0, lengths, rng = draw_inputs(m, kind, True, True, seed=3, drop_seed=DROP_SEED)
    cot = upstream_grads(m, (T, B, 2 * H), B, rng)

    def fixed_mask() -> None:
        m.rng = np.random.default_rng(DROP_SEED)  # the same dropout mask on every evaluation

    fixed_mask()
    with_dropout = run_engine(m, kind, x, h0, c0, lengths)["output"]
    without = run_engine(m.eval(), kind, x, h0, c0, lengths)["output"]
    assert not np.allclose(with_dropout, without), "dropout should change the outputs of a 2-layer stack"
    m.train()
    errors = check_all_gradients(m, kind, x, h0, c0, lengths, cot, before_forward=fixed_mask)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"{worst}: relative error {errors[worst]:.3e}"


@pytest.mark.parametrize(("kind", "layout"), KIND_LAYOUTS)
def test_bptt_without_biases_matches_finite_differences(kind, layout, monkeypatch):
    if layout == "columns":
        force_lstm_columns(monkeypatch)
    m = make_engine(kind, I, H, num_layers=2, bidirectional=True, bias=False, dtype=np.float64, seed=1)
    x, h0, c0, lengths, rng = draw_inputs(m, kind, True, True, seed=4)
    cot = upstream_grads(m, (T, B, 2 * H), B, rng)
    errors = check_all_gradients(m, kind, x, h0, c0, lengths, cot)
    assert not any(name.startswith("bias") for name in errors)
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOLERANCE, f"{worst}: relative error {errors[worst]:.3e}"
