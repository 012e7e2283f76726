"""Inference forward of the GRU in column layout: each step's gates are (G, B), the states (H, B).

(The LSTM's column layout, for training and inference, is `cells.lstm_forward_columns`.)
Same arithmetic as `cells.gru_forward` with `keep=False` (processing order, scaled
pre-activations, contiguous scaled `Wt` (H, G)) and bit-identical results, but the caller hands the input
projection in column layout, `xw_cols` (G, T, B) (one product for all steps, Wt_ih^T (G, I) x x^T (I, T*B),
which OpenBLAS runs as fast as the row-layout one), and each step's recurrent product is computed
transposed, (G, B) = Wt^T (G, H) x h^T (H, B), with the step's strided slice of `xw_cols` read once by the
add. In this layout every gate block is a contiguous run of rows instead of a strided column slice. The
outputs are returned as (T, B, H) views of (T, H, B) arrays; the caller copies them into its output. No
cache: training keeps the row layout, which the backwards in `cells.py` read.
"""

from __future__ import annotations

from .backend import xp
from .cells import _masked_carry, _sigmoid_from_tanh

MIN_BATCH = 8  # below this the per-step products are matrix-vector like and the row layout is as fast


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
