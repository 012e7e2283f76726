"""Inference in column layout (`rnn_engine.columns`) gives exactly the row-layout forward's outputs.

`no_grad` calls of LSTM / GRU with B >= columns.MIN_BATCH and contiguous weight copies take the column path;
a call with gradients enabled takes the row path that the PyTorch parity grid checks. Both must agree to the
last bit (same products, same elementwise operations in the same order), for every layout option.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnn_engine import GRU, LSTM, columns, no_grad, recurrent

I, H, T = 5, 6, 9  # T * B >= COPY_MIN_ROWS (64) at B = 8: the contiguous-copy path
FLAGS = (False, True)
GRID = list(itertools.product(("lstm", "gru"), FLAGS, FLAGS, FLAGS, (8, 11), (np.float32, np.float64)))


def _outputs(m, kind, x, h0, c0, lengths):
    if kind == "lstm":
        out, (h_n, c_n) = m(x, (h0, c0), lengths=lengths)
        return [out, h_n, c_n]
    out, h_n = m(x, h0, lengths=lengths)
    return [out, h_n]


@pytest.mark.parametrize(("kind", "bidirectional", "with_lengths", "bias", "B", "dtype"), GRID)
def test_column_inference_equals_row_forward_bit_for_bit(kind, bidirectional, with_lengths, bias, B, dtype):
    cls = LSTM if kind == "lstm" else GRU
    m = cls(I, H, num_layers=2, bidirectional=bidirectional, bias=bias, batch_first=True, dtype=dtype,
            seed=3)
    assert m._columns_apply(False, T, B) and not m._columns_apply(True, T, B)
    rng = np.random.default_rng(4)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((2 * D, B, H)).astype(dtype)
    c0 = rng.standard_normal((2 * D, B, H)).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if with_lengths else None
    m.eval()
    rows = _outputs(m, kind, x, h0, c0, lengths)  # gradients enabled: row layout
    with no_grad():
        cols = _outputs(m, kind, x, h0, c0, lengths)
    for r, c in zip(rows, cols, strict=True):
        assert r.shape == c.shape and r.dtype == c.dtype
        np.testing.assert_array_equal(c, r)


def test_small_batches_and_short_calls_keep_the_row_layout():
    m = LSTM(I, H, seed=0)
    assert not m._columns_apply(False, T, columns.MIN_BATCH - 1)
    assert not m._columns_apply(False, 1, columns.MIN_BATCH)  # T*B < COPY_MIN_ROWS: transposed views
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
