"""LSTM over a whole sequence in row layout: `lstm_cell`, `lstm_forward`, `lstm_backward`
(conventions: `rnn_engine.nn.kernels`)."""

from __future__ import annotations

from typing import NamedTuple

from ...backend import xp
from .common import _masked_carry, _recurrent_weight_grad, _sigmoid_from_tanh


class LSTMCache(NamedTuple):
    acts: xp.ndarray  # (T, B, 4H) gate activations i, f, g, o
    hs: xp.ndarray  # (T, B, H) carried h after each step
    cs: xp.ndarray  # (T, B, H) carried c after each step (tanh(c) is recomputed by the backward in one call)
    h0: xp.ndarray  # (B, H)
    c0: xp.ndarray  # (B, H)
    mask: xp.ndarray | None


def lstm_cell(a, c_prev, c_out, tanh_c_out, h_out):
    """One step, in place: scaled pre-activations a (B, 4H) -> activations; writes c', tanh(c'), h'.

    (i, f, g, o) = (s, s, tanh, s)(pre);  c' = f c + i g;  h' = o tanh(c').
    """
    H = a.shape[1] // 4
    xp.tanh(a, out=a)  # one call for all four gates
    _sigmoid_from_tanh(a[:, : 2 * H])
    _sigmoid_from_tanh(a[:, 3 * H :])
    i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
    xp.multiply(f, c_prev, out=c_out)
    xp.multiply(i, g, out=h_out)  # h_out as scratch for i g
    c_out += h_out
    xp.tanh(c_out, out=tanh_c_out)
    xp.multiply(o, tanh_c_out, out=h_out)


def lstm_forward(xw, h0, c0, Wt, mask, keep, hw_scale=None):
    """xw: (T, B, 4H) scaled, both biases folded in. Returns (out, hs, c_T, cache).

    `hw_scale` (4H,): the gate scale still to apply to each step's product when `Wt` is unscaled.
    """
    T, B, G = xw.shape
    H = G // 4
    hs = xp.empty((T, B, H), dtype=xw.dtype)
    out = hs if mask is None else xp.empty_like(hs)
    cs = xp.empty((T if keep else 2, B, H), dtype=xw.dtype)  # inference keeps only the running c
    tanh_c = xp.empty((B, H), dtype=xw.dtype)  # scratch
    hw = xp.empty((B, G), dtype=xw.dtype)
    h, c = h0, c0
    for p in range(T):
        a, c_new, h_new = xw[p], cs[p if keep else p % 2], hs[p]
        xp.matmul(h, Wt, out=hw)  # (B, H) @ (H, 4H): all gates in one product
        if hw_scale is not None:
            hw *= hw_scale
        a += hw
        lstm_cell(a, c, c_new, tanh_c, h_new)
        if mask is not None:
            xp.multiply(h_new, mask[p], out=out[p])
            _masked_carry(mask[p], h_new, h)
            _masked_carry(mask[p], c_new, c)
        h, c = h_new, c_new
    return out, hs, c, (LSTMCache(xw, hs, cs, h0, c0, mask) if keep else None)


def lstm_backward(d_out, d_hT, d_cT, cache, W_hh):
    """Returns (dpre (T, B, 4H), dh0, dc0, dW_hh, db_hh)."""
    T, B, H = d_out.shape
    acts, mask = cache.acts, cache.mask
    tc = xp.tanh(cache.cs)  # on padded steps cs holds the carried state, but those factors are masked to 0
    i, f, g, o = acts[..., :H], acts[..., H : 2 * H], acts[..., 2 * H : 3 * H], acts[..., 3 * H :]
    # Factors for all steps in a few vectorised calls: d pre = (dc g, dc c_prev, dc i, dh tanh c) * act',
    # with act' = s(1-s) or 1-g^2; dc gathers dh o (1 - tanh^2 c) on the way.
    # (no temporaries: at these sizes every fresh array costs its page faults, as much as the arithmetic)
    fac = xp.empty((T, B, 4 * H), dtype=acts.dtype)
    xp.subtract(1.0, acts, out=fac)
    fac *= acts  # s(1 - s) on the sigmoid blocks, overwritten for g below
    fac[..., :H] *= g
    fac[0, :, H : 2 * H] *= cache.c0  # c_prev
    fac[1:, :, H : 2 * H] *= cache.cs[:-1]
    xp.multiply(g, g, out=fac[..., 2 * H : 3 * H])
    xp.subtract(1.0, fac[..., 2 * H : 3 * H], out=fac[..., 2 * H : 3 * H])
    fac[..., 2 * H : 3 * H] *= i
    fac[..., 3 * H :] *= tc
    o_dtanh = xp.multiply(tc, tc, out=tc)  # tanh(c) is not needed after this: 1 - tanh^2 over it
    xp.subtract(1.0, o_dtanh, out=o_dtanh)
    o_dtanh *= o
    fac3 = fac[..., : 3 * H].reshape(T, B, 3, H)
    dpre = xp.empty((T, B, 4 * H), dtype=d_out.dtype)
    dh, dc = d_hT.copy(), d_cT.copy()
    dht, dct = xp.empty((B, H), dtype=d_out.dtype), xp.empty((B, H), dtype=d_out.dtype)
    for p in range(T - 1, -1, -1):
        xp.add(dh, d_out[p], out=dht)
        if mask is not None:
            m = mask[p]
            dht *= m
            dh_pass, dc_pass = dh - m * dh, dc - m * dc  # padding passes the state gradients unchanged
            dc *= m
        xp.multiply(dht, o_dtanh[p], out=dct)
        dct += dc
        dp = dpre[p]
        xp.multiply(dct[:, None, :], fac3[p], out=dp[:, : 3 * H].reshape(B, 3, H))
        xp.multiply(dht, fac[p, :, 3 * H :], out=dp[:, 3 * H :])
        xp.multiply(dct, f[p], out=dc)
        dh = dp @ W_hh
        if mask is not None:
            dh += dh_pass
            dc += dc_pass
    return dpre, dh, dc, _recurrent_weight_grad(dpre, cache.h0, cache.hs), dpre.sum(axis=(0, 1))
