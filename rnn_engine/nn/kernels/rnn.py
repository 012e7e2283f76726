"""Vanilla RNN (tanh or relu) over a whole sequence in row layout: `rnn_cell`, `rnn_forward`, `rnn_backward`
(conventions: `rnn_engine.nn.kernels`)."""

from __future__ import annotations

from typing import NamedTuple

from ...backend import xp
from .common import _masked_carry, _recurrent_weight_grad


class RNNCache(NamedTuple):
    hs: xp.ndarray  # (T, B, H) carried states after each step (= activations where not padded)
    h0: xp.ndarray  # (B, H)
    mask: xp.ndarray | None  # (T, B, 1)
    relu: bool


def rnn_cell(a, relu):
    """One step, in place: pre-activation a (B, H) -> f(a)."""
    return xp.maximum(a, 0, out=a) if relu else xp.tanh(a, out=a)


def rnn_forward(xw, h0, Wt, mask, keep, relu=False):
    """h_p = f(xw_p + h_{p-1} W_hh^T), f = tanh or relu.  xw: (T, B, H) with both biases folded in.

    Returns (out (T, B, H), hs (T, B, H), cache). The states are computed in place in `xw`.
    """
    T, B, H = xw.shape
    hs = xw
    out = hs if mask is None else xp.empty_like(hs)
    hw = xp.empty((B, H), dtype=xw.dtype)
    h = h0
    for p in range(T):
        a = hs[p]
        xp.matmul(h, Wt, out=hw)
        a += hw
        rnn_cell(a, relu)
        if mask is not None:
            xp.multiply(a, mask[p], out=out[p])
            _masked_carry(mask[p], a, h)
        h = a
    return out, hs, (RNNCache(hs, h0, mask, relu) if keep else None)


def rnn_backward(d_out, d_hT, cache, W_hh):
    """Returns (dpre (T, B, H), dh0, dW_hh, db_hh)."""
    hs, mask = cache.hs, cache.mask
    T, B, H = d_out.shape
    # f'(a) for all steps at once from the states: relu' = [h > 0], tanh' = 1 - h^2 (padding masked below)
    deriv = (hs > 0).astype(hs.dtype) if cache.relu else 1.0 - hs * hs
    dpre = xp.empty((T, B, H), dtype=d_out.dtype)
    dh = d_hT.copy()
    for p in range(T - 1, -1, -1):
        dp = dpre[p]
        xp.add(dh, d_out[p], out=dp)
        dp *= deriv[p]
        if mask is not None:
            dp *= mask[p]
            dh_pass = dh - mask[p] * dh  # the state passes padding unchanged
        dh = dp @ W_hh
        if mask is not None:
            dh += dh_pass
    return dpre, dh, _recurrent_weight_grad(dpre, cache.h0, hs), dpre.sum(axis=(0, 1))
