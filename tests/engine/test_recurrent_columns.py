"""Column layout (`rnn_engine.nn.kernels.columns`: `*_columns` kernels) against the row layout.

GRU: `no_grad` calls with B >= columns.MIN_BATCH and contiguous weight copies take the column path; a call
with gradients enabled takes the row path that the PyTorch parity grid checks. Both must agree to the last
bit (same products, same elementwise operations in the same order), for every layout option.
LSTM: calls with B >= columns.MIN_BATCH and T*B >= COPY_MIN_ROWS take the column layout for training and
inference alike (the parity and finite-difference grids run it too, `force_lstm_columns`): inference gives
the training forward's outputs bit for bit, and forward and backward agree with the row layout to rounding.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnn_engine import GRU, LSTM, no_grad
from rnn_engine.nn import recurrent
from rnn_engine.nn.kernels import columns

I, H, T = 5, 6, 9  # T * B >= COPY_MIN_ROWS (64) at B = 8: the contiguous-copy path
FLAGS = (False, True)
GRID = list(itertools.product(("lstm", "gru"), FLAGS, FLAGS, FLAGS, (8, 11), (np.float32, np.float64)))
GRU_GRID = [c for c in GRID if c[0] == "gru"]
LSTM_GRID = [c for c in GRID if c[0] == "lstm"]


def _outputs(m, kind, x, h0, c0, lengths):
    if kind == "lstm":
        out, (h_n, c_n) = m(x, (h0, c0), lengths=lengths)
        return [out, h_n, c_n]
    out, h_n = m(x, h0, lengths=lengths)
    return [out, h_n]


def _layer_and_inputs(kind, bidirectional, with_lengths, bias, B, dtype):
    cls = LSTM if kind == "lstm" else GRU
    m = cls(I, H, num_layers=2, bidirectional=bidirectional, bias=bias, batch_first=True, dtype=dtype,
            seed=3)
    rng = np.random.default_rng(4)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((2 * D, B, H)).astype(dtype)
    c0 = rng.standard_normal((2 * D, B, H)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if with_lengths else None
    return m, x, h0, c0, lengths


@pytest.mark.parametrize(("kind", "bidirectional", "with_lengths", "bias", "B", "dtype"), LSTM_GRID)
def test_lstm_column_inference_equals_its_training_forward_bit_for_bit(kind, bidirectional, with_lengths,
                                                                         bias, B, dtype):
    m, x, h0, c0, lengths = _layer_and_inputs(kind, bidirectional, with_lengths, bias, B, dtype)
    assert m._lstm_columns_apply(T, B) and not m._columns_apply(False, T, B)
    m.eval()
    train = _outputs(m, kind, x, h0, c0, lengths)
    with no_grad():
        inference = _outputs(m, kind, x, h0, c0, lengths)
        m.freeze()
        frozen = _outputs(m, kind, x, h0, c0, lengths)  # from the kept copies, transposed back
    for r, c, f in zip(train, inference, frozen, strict=True):
        assert r.shape == c.shape and r.dtype == c.dtype and r.flags.c_contiguous == c.flags.c_contiguous
        np.testing.assert_array_equal(c, r)
        np.testing.assert_array_equal(f, r)


@pytest.mark.parametrize(("kind", "bidirectional", "with_lengths", "bias", "B", "dtype"), LSTM_GRID)
def test_lstm_column_layout_agrees_with_the_row_layout(kind, bidirectional, with_lengths, bias, B, dtype,
                                                       monkeypatch):
    m, x, h0, c0, lengths = _layer_and_inputs(kind, bidirectional, with_lengths, bias, B, dtype)
    rng = np.random.default_rng(6)
    d_out = rng.standard_normal((B, T, m.num_directions * H)).astype(dtype)
    d_h, d_c = (rng.standard_normal(h0.shape).astype(dtype) for _ in range(2))

    def run():
        res = _outputs(m, kind, x, h0, c0, lengths)
        dx, (dh0, dc0) = m.backward(d_out, d_h, d_c)
        return res + [dx, dh0, dc0] + [m.grads[k].copy() for k in sorted(m.grads)]

    assert m._lstm_columns_apply(T, B)
    cols = run()
    monkeypatch.setattr(columns, "MIN_BATCH", B + 1)  # the row layout
    assert not m._lstm_columns_apply(T, B)
    rows = run()
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for r, c in zip(rows, cols, strict=True):
        assert r.shape == c.shape and r.dtype == c.dtype
        np.testing.assert_allclose(c, r, rtol=tol, atol=tol)


@pytest.mark.parametrize(("kind", "bidirectional", "with_lengths", "bias", "B", "dtype"), GRU_GRID)
def test_column_inference_equals_row_forward_bit_for_bit(kind, bidirectional, with_lengths, bias, B, dtype):
    m, x, h0, c0, lengths = _layer_and_inputs(kind, bidirectional, with_lengths, bias, B, dtype)
    assert m._columns_apply(False, T, B) and not m._columns_apply(True, T, B)
    m.eval()
    rows = _outputs(m, kind, x, h0, c0, lengths)  # gradients enabled: row layout
    with no_grad():
        cols = _outputs(m, kind, x, h0, c0, lengths)
    for r, c in zip(rows, cols, strict=True):
        assert r.shape == c.shape and r.dtype == c.dtype
        np.testing.assert_array_equal(c, r)


def test_small_batches_and_short_calls_keep_the_row_layout():
    m = LSTM(I, H, seed=0)
    assert not m._lstm_columns_apply(T, columns.MIN_BATCH - 1)
    assert not m._lstm_columns_apply(1, columns.MIN_BATCH)  # T*B < COPY_MIN_ROWS: transposed views
    assert not GRU(I, H, seed=0)._columns_apply(False, T, columns.MIN_BATCH - 1)
    assert columns.MIN_BATCH < recurrent.COPY_MIN_ROWS
    assert not recurrent.RNN(I, H, seed=0)._columns_apply(False, T, 64)


def test_column_inference_does_not_change_the_inputs_or_the_parameters():
    m = GRU(I, H, seed=1)
    x = np.random.default_rng(5).standard_normal((T, 16, I)).astype(np.float32)
    x_before, params_before = x.copy(), m.state_dict()
    with no_grad():
        m(x)
    np.testing.assert_array_equal(x, x_before)
    for name, p in m.state_dict().items():
        np.testing.assert_array_equal(p, params_before[name])
