"""Both forward weight paths agree: contiguous scaled copies (long calls) and transposed views (short ones).

`recurrent.COPY_MIN_ROWS` picks the path by T*B; the PyTorch parity grid runs at small T*B (the view path),
so here every kind, direction and padding case is run through both paths and compared, values and gradients.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnn_engine.nn import recurrent
from tests.engine.recurrent_cases import KINDS, make_engine, run_engine, upstream_grads

I, H, T, B = 3, 4, 6, 3
GRID = list(itertools.product(KINDS, (False, True), (False, True), (True, False)))


def _run(kind, bidirectional, with_lengths, bias, min_rows, monkeypatch):
    monkeypatch.setattr(recurrent, "COPY_MIN_ROWS", min_rows)
    m = make_engine(kind, I, H, num_layers=2, bidirectional=bidirectional, bias=bias, dtype=np.float64,
                    seed=1)
    rng = np.random.default_rng(2)
    D = 2 if bidirectional else 1
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((2 * D, B, H))
    c0 = rng.standard_normal((2 * D, B, H)) if kind == "lstm" else None
    lengths = np.array([T, 2, 4]) if with_lengths else None
    cot = upstream_grads(m, (T, B, D * H), B, rng)
    res = run_engine(m, kind, x, h0, c0, lengths, cot)
    flat = {f"grad:{k}": g for k, g in res.pop("grads").items()}
    flat.update((k, v) for k, v in res.items() if v is not None)
    return flat


@pytest.mark.parametrize(("kind", "bidirectional", "with_lengths", "bias"), GRID)
def test_copied_and_viewed_weights_give_the_same_outputs_and_gradients(
    kind, bidirectional, with_lengths, bias, monkeypatch
):
    copied = _run(kind, bidirectional, with_lengths, bias, 0, monkeypatch)
    viewed = _run(kind, bidirectional, with_lengths, bias, 10**9, monkeypatch)
    assert copied.keys() == viewed.keys() and any(k.startswith("grad") for k in copied)
    for key, value in copied.items():
        np.testing.assert_allclose(value, viewed[key], rtol=0, atol=1e-12, err_msg=key)
