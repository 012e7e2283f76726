"""The forward caches exactly the README's formula for backward, and nothing at all under `no_grad()`.

Per layer and direction (elements of the layer dtype): RNN T*B*H, GRU 5*T*B*H, LSTM 6*T*B*H; per layer its
input (the caller's x for layer 0, the previous layer's output after it); plus the initial states and, with
lengths, the (T, B, 1) step mask.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine import no_grad
from tests.engine.recurrent_cases import KIND_LAYOUTS, KINDS, force_lstm_columns, make_engine

I, H, T, B = 3, 4, 7, 5
PER_DIRECTION = {"tanh": 1, "relu": 1, "gru": 5, "lstm": 6}  # multiples of T*B*H


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, tuple | list):
        for item in obj:
            yield from _arrays(item)


def _owned_bytes(cache) -> int:
    """Bytes of the distinct buffers the cache keeps alive (views count once, through their base)."""
    roots = {}
    for arr in _arrays(cache):
        while isinstance(arr.base, np.ndarray):
            arr = arr.base
        roots[id(arr)] = arr
    return sum(a.nbytes for a in roots.values())


@pytest.mark.parametrize(("kind", "layout"), KIND_LAYOUTS)
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "len"])
def test_cache_size_matches_the_documented_formula(kind, num_layers, bidirectional, with_lengths, layout,
                                                   monkeypatch):
    if layout == "columns":
        force_lstm_columns(monkeypatch)
    m = make_engine(kind, I, H, num_layers=num_layers, bidirectional=bidirectional, seed=0)
    assert m._lstm_columns_apply(T, B) == (layout == "columns")
    D, L = m.num_directions, num_layers
    x = np.zeros((T, B, I), dtype=np.float32)
    lengths = np.array([T, 2, 3, T, 1]) if with_lengths else None
    m(x, lengths=lengths)
    item = np.dtype(np.float32).itemsize
    states = (2 if kind == "lstm" else 1) * L * D * B * H  # h0 (and c0) zeros, referenced by the cache
    inputs = T * B * I + (L - 1) * T * B * D * H
    step_mask = T * B if with_lengths else 0
    expected = item * (L * D * PER_DIRECTION[kind] * T * B * H + inputs + states + step_mask)
    assert _owned_bytes(m._cache) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_inference_caches_nothing(kind):
    m = make_engine(kind, I, H, num_layers=2, bidirectional=True, seed=0)
    x = np.zeros((T, B, I), dtype=np.float32)
    m(x)
    assert m._cache is not None
    with no_grad():
        m(x)
    assert m._cache is None
