"""GRU over a whole sequence in row layout: `gru_cell`, `gru_forward`, `gru_backward`
(conventions: `rnn_engine.nn.kernels`)."""

from __future__ import annotations

from typing import NamedTuple

from ...backend import xp
from .common import _masked_carry, _recurrent_weight_grad, _sigmoid_from_tanh


class GRUCache(NamedTuple):
    acts: xp.ndarray  # (T, B, 3H) activations r, z, n
    hn: xp.ndarray  # (T, B, H) h W_hn^T + b_hn, the part r gates
    hs: xp.ndarray  # (T, B, H) carried states
    h0: xp.ndarray  # (B, H)
    mask: xp.ndarray | None


def gru_cell(a, hw, b_hn, h_prev, hn_out, h_out):
    """One step, in place: a (B, 3H) = scaled x-side pre-activations, hw (B, 3H) = h W_hh^T (scaled).

    r, z = s(a_rz + hw_rz);  n = tanh(a_n + r (hw_n + b_hn));  h' = n + z (h - n).
    """
    H = a.shape[1] // 3
    rz, n = a[:, : 2 * H], a[:, 2 * H :]
    rz += hw[:, : 2 * H]
    xp.tanh(rz, out=rz)
    _sigmoid_from_tanh(rz)
    xp.add(hw[:, 2 * H :], b_hn, out=hn_out)
    xp.multiply(a[:, :H], hn_out, out=h_out)  # h_out as scratch for r hn
    n += h_out
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h_out)
    h_out *= a[:, H : 2 * H]
    h_out += n


def gru_forward(xw, h0, Wt, b_hn, mask, keep, hw_scale=None):
    """xw: (T, B, 3H) scaled, with b_ih and the r, z blocks of b_hh folded in (b_hn must stay inside r (...)).

    Returns (out, hs, cache). `hw_scale` (3H,): the gate scale still to apply to each step's product.
    """
    T, B, G = xw.shape
    H = G // 3
    hs = xp.empty((T, B, H), dtype=xw.dtype)
    out = hs if mask is None else xp.empty_like(hs)
    hn = xp.empty((T if keep else 1, B, H), dtype=xw.dtype)
    hw = xp.empty((B, G), dtype=xw.dtype)
    h = h0
    for p in range(T):
        xp.matmul(h, Wt, out=hw)  # (B, H) @ (H, 3H): all gates in one product
        if hw_scale is not None:
            hw *= hw_scale
        gru_cell(xw[p], hw, b_hn, h, hn[p if keep else 0], hs[p])
        if mask is not None:
            xp.multiply(hs[p], mask[p], out=out[p])
            _masked_carry(mask[p], hs[p], h)
        h = hs[p]
    return out, hs, (GRUCache(xw, hn, hs, h0, mask) if keep else None)


def gru_backward(d_out, d_hT, cache, W_hh):
    """Returns (dxw (T, B, 3H), dh0, dW_hh, db_hh); dxw and the hidden-side gradient differ in the n block."""
    T, B, H = d_out.shape
    acts, mask = cache.acts, cache.mask
    r, z, n = acts[..., :H], acts[..., H : 2 * H], acts[..., 2 * H :]
    # Factors for all steps: d n_pre = dh (1-z)(1-n^2); d r_pre = d n_pre hn r(1-r); d z_pre = dh (h-n) z(1-z)
    # (in place, no temporaries: each fresh multi-MB array costs its page faults)
    fac_n = xp.multiply(n, n)
    xp.subtract(1.0, fac_n, out=fac_n)
    fac_n *= 1.0 - z  # (T, B, H) temporary, a third of the others
    rz = acts[..., : 2 * H]
    fac_rz = xp.subtract(1.0, rz)
    fac_rz *= rz
    fac_rz[..., :H] *= cache.hn
    fac_rz[0, :, H:] *= cache.h0 - n[0]  # h_prev - n
    fac_rz[1:, :, H:] *= cache.hs[:-1] - n[1:]
    dpre_x = xp.empty((T, B, 3 * H), dtype=d_out.dtype)
    dpre_h = xp.empty((T, B, 3 * H), dtype=d_out.dtype)
    dh = d_hT.copy()
    dht = xp.empty((B, H), dtype=d_out.dtype)
    for p in range(T - 1, -1, -1):
        xp.add(dh, d_out[p], out=dht)
        if mask is not None:
            dht *= mask[p]
            dh_pass = dh - mask[p] * dh
        dx, dhh = dpre_x[p], dpre_h[p]
        dpn = dx[:, 2 * H :]
        xp.multiply(dht, fac_n[p], out=dpn)
        xp.multiply(dpn, fac_rz[p, :, :H], out=dx[:, :H])  # d r
        xp.multiply(dht, fac_rz[p, :, H:], out=dx[:, H : 2 * H])  # d z
        dhh[:, : 2 * H] = dx[:, : 2 * H]
        xp.multiply(dpn, r[p], out=dhh[:, 2 * H :])
        dh = dhh @ W_hh
        dht *= z[p]
        dh += dht
        if mask is not None:
            dh += dh_pass
    return dpre_x, dh, _recurrent_weight_grad(dpre_h, cache.h0, cache.hs), dpre_h.sum(axis=(0, 1))
