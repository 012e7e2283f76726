"""Sequence kernels in column layout: each step's gates are (G, B), the states (H, B).

LSTM (training and inference): `lstm_cell_columns`, `lstm_forward_columns`, `lstm_backward_columns` (below).
GRU (inference only): `gru_forward_columns`.
Same arithmetic as `gru.gru_forward` with `keep=False` (processing order, scaled
pre-activations, contiguous scaled `Wt` (H, G)) and bit-identical results, but the caller hands the input
projection in column layout, `xw_cols` (G, T, B) (one product for all steps, Wt_ih^T (G, I) x x^T (I, T*B),
which OpenBLAS runs as fast as the row-layout one), and each step's recurrent product is computed
transposed, (G, B) = Wt^T (G, H) x h^T (H, B), with the step's strided slice of `xw_cols` read once by the
add. In this layout every gate block is a contiguous run of rows instead of a strided column slice. The
outputs are returned as (T, B, H) views of (T, H, B) arrays; the caller copies them into its output. No
cache: training keeps the row layout, which the row-layout backwards read.
"""

from __future__ import annotations

from typing import NamedTuple

from ...backend import xp
from .common import _masked_carry, _sigmoid_from_tanh

MIN_BATCH = 8  # below this the per-step products are matrix-vector like and the row layout is as fast


# --------------------------------------------------------------------------- GRU in column layout (inference)
def _rows(a):
    """(T, K, B) or (K, B) -> a (T, B, K) or (B, K) view."""
    return a.swapaxes(-1, -2)


def gru_forward_columns(xw_cols, h0, Wt, b_hn, mask):
    """xw_cols: (3H, T, B) scaled, b_ih and the r, z blocks of b_hh folded in; b_hn (H,) or 0.0; h0 (B, H);
    Wt (H, 3H) contiguous, scaled; mask (T, B, 1) or None.  Returns (out (T, B, H), h_T (B, H)) as views."""
    G, T, B = xw_cols.shape
    H = G // 3
    hs = xp.empty((T, H, B), dtype=xw_cols.dtype)
    out = hs if mask is None else xp.empty_like(hs)
    mask_c = None if mask is None else mask.swapaxes(1, 2)
    hn = xp.empty((H, B), dtype=xw_cols.dtype)  # h W_hn^T + b_hn
    hw = xp.empty((G, B), dtype=xw_cols.dtype)
    a = xp.empty((G, B), dtype=xw_cols.dtype)  # r, z activations and n
    b_hn = xp.asarray(b_hn, dtype=xw_cols.dtype)
    b_hn = b_hn[:, None] if b_hn.ndim == 1 else b_hn  # (H, 1) column, or the scalar 0
    WtT = Wt.T
    h = xp.ascontiguousarray(h0.T)
    for p in range(T):
        x_p, h_new = xw_cols[:, p], hs[p]
        xp.matmul(WtT, h, out=hw)
        rz, n = a[: 2 * H], a[2 * H :]
        xp.add(x_p[: 2 * H], hw[: 2 * H], out=rz)
        xp.tanh(rz, out=rz)
        _sigmoid_from_tanh(rz)
        xp.add(hw[2 * H :], b_hn, out=hn)
        xp.multiply(a[:H], hn, out=h_new)  # h_new as scratch for r hn
        xp.add(x_p[2 * H :], h_new, out=n)
        xp.tanh(n, out=n)
        xp.subtract(h, n, out=h_new)
        h_new *= a[H : 2 * H]  # z (h - n)
        h_new += n
        if mask is not None:
            xp.multiply(h_new, mask_c[p], out=out[p])
            _masked_carry(mask_c[p], h_new, h)
        h = h_new
    return _rows(out), _rows(h)


# ------------------------------------------------------------------------------------ LSTM in column layout
# Training and inference of LSTM layers with B >= columns.MIN_BATCH run in a step-major column layout: every
# per-step array is (K, B) (the gates (4H, B), the states (H, B)) and a sequence is (T, K, B), so a step's
# gates are contiguous runs of rows and each step is a contiguous slice. The step product is
# W (4H, H) @ h (H, B) on the parameters' own (C-contiguous, scaled) layout, which OpenBLAS runs 15-25%
# faster than h (B, H) @ W^T (H, 4H) at these shapes (measured in docs/performance.md).
class LSTMColumnsCache(NamedTuple):
    acts: xp.ndarray  # (T, 4H, B) gate activations i, f, g, o (processing order; a view of the projection)
    hs: xp.ndarray  # (T, H, B) carried h after each step
    cs: xp.ndarray  # (T, H, B) carried c after each step
    h0: xp.ndarray  # (H, B)
    c0: xp.ndarray  # (H, B)
    mask: xp.ndarray | None  # (T, 1, B)


def lstm_cell_columns(a, c_prev, c_out, tanh_c_out, ig, h_out):
    """One step in column layout, in place: a (4H, B) scaled pre-activations -> activations; writes c', h'.

    The same operations in the same order as `lstm_cell` (bit-identical per element), on row blocks.
    """
    H = a.shape[0] // 4
    xp.tanh(a, out=a)  # one call for all four gates
    _sigmoid_from_tanh(a[: 2 * H])
    _sigmoid_from_tanh(a[3 * H :])
    xp.multiply(a[H : 2 * H], c_prev, out=c_out)  # f c
    xp.multiply(a[:H], a[2 * H : 3 * H], out=ig)  # i g
    c_out += ig
    xp.tanh(c_out, out=tanh_c_out)
    xp.multiply(a[3 * H :], tanh_c_out, out=h_out)  # o tanh(c')


def lstm_forward_columns(xw, h0, c0, W, mask, keep):
    """xw (T, 4H, B): scaled pre-activations with both biases folded in, processing order (a time-reversed
    view for the reverse direction), turned into the activations in place; h0, c0 (H, B); W (4H, H)
    = scale * W_hh, C-contiguous; mask (T, 1, B) or None.

    Returns (out (T, H, B), hs (T, H, B), c_T (H, B), cache or None).
    """
    T, G, B = xw.shape
    H = G // 4
    dtype = xw.dtype
    hs = xp.empty((T, H, B), dtype=dtype)
    out = hs if mask is None else xp.empty_like(hs)
    cs = xp.empty((T if keep else 2, H, B), dtype=dtype)  # inference keeps only the running c
    tanh_c, ig = xp.empty((H, B), dtype=dtype), xp.empty((H, B), dtype=dtype)
    hw = xp.empty((G, B), dtype=dtype)
    h, c = h0, c0
    for p in range(T):
        a, c_new, h_new = xw[p], cs[p if keep else p % 2], hs[p]
        xp.matmul(W, h, out=hw)  # (4H, H) @ (H, B): all gates in one product
        a += hw
        lstm_cell_columns(a, c, c_new, tanh_c, ig, h_new)
        if mask is not None:
            xp.multiply(h_new, mask[p], out=out[p])
            _masked_carry(mask[p], h_new, h)
            _masked_carry(mask[p], c_new, c)
        h, c = h_new, c_new
    return out, hs, c, (LSTMColumnsCache(xw, hs, cs, h0, c0, mask) if keep else None)


def lstm_backward_columns(d_out, d_hT, d_cT, cache, W_hh_t):
    """d_out (T, H, B) in processing order (padding already zeroed), d_hT, d_cT (H, B), W_hh_t = W_hh^T
    (H, 4H) unscaled and C-contiguous.  Returns (dpre (T, 4H, B), dh0 (H, B), dc0 (H, B)).

    The same factors and per-step operations as `lstm_backward`, in column layout; the caller forms the
    weight and input gradients from `dpre` in a few products over all steps.
    """
    T, H, B = d_out.shape
    acts, mask = cache.acts, cache.mask
    dtype = d_out.dtype
    tc = xp.tanh(cache.cs)  # on padded steps cs holds the carried state, but those factors are masked to 0
    i, f, g, o = acts[:, :H], acts[:, H : 2 * H], acts[:, 2 * H : 3 * H], acts[:, 3 * H :]
    fac = xp.empty((T, 4 * H, B), dtype=dtype)
    xp.subtract(1.0, acts, out=fac)
    fac *= acts  # s(1 - s) on the sigmoid blocks, overwritten for g below
    fac[:, :H] *= g
    fac[0, H : 2 * H] *= cache.c0  # c_prev
    fac[1:, H : 2 * H] *= cache.cs[:-1]
    xp.multiply(g, g, out=fac[:, 2 * H : 3 * H])
    xp.subtract(1.0, fac[:, 2 * H : 3 * H], out=fac[:, 2 * H : 3 * H])
    fac[:, 2 * H : 3 * H] *= i
    fac[:, 3 * H :] *= tc
    o_dtanh = xp.multiply(tc, tc, out=tc)  # 1 - tanh^2(c), times o
    xp.subtract(1.0, o_dtanh, out=o_dtanh)
    o_dtanh *= o
    fac3 = fac[:, : 3 * H].reshape(T, 3, H, B)
    dpre = xp.empty((T, 4 * H, B), dtype=dtype)
    dh, dc = d_hT.copy(), d_cT.copy()
    dht, dct = xp.empty((H, B), dtype=dtype), xp.empty((H, B), dtype=dtype)
    dh_bufs = (xp.empty((H, B), dtype=dtype), xp.empty((H, B), dtype=dtype))
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
        xp.multiply(dct, fac3[p], out=dp[: 3 * H].reshape(3, H, B))
        xp.multiply(dht, fac[p, 3 * H :], out=dp[3 * H :])
        xp.multiply(dct, f[p], out=dc)
        dh = dh_bufs[p % 2]
        xp.matmul(W_hh_t, dp, out=dh)  # (H, 4H) @ (4H, B)
        if mask is not None:
            dh += dh_pass
            dc += dc_pass
    return dpre, dh, dc
