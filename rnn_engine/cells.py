"""One direction of one recurrent layer over a whole sequence: forward and hand-derived BPTT, side by side.

Conventions shared by every kind (G gate blocks of H units; B sequences; T steps):
- Cells work in *processing order*: step p = 0..T-1 reads the state written by step p-1. The reverse
  direction is run by handing in time-reversed views (`xw[::-1]`, `mask[::-1]`, `d_out[::-1]`), so no
  cell knows about directions.
- Sigmoid is computed through tanh, s(a) = (1 + tanh(a / 2)) / 2, so one `tanh` call covers a step's whole
  gate block. The halving is folded into the weights once per forward call (`gate_scale`): the forward
  takes `xw` (T, B, G*H) = scale * (x W_ih^T + b) and `Wt` (H, G*H) = (scale * W_hh)^T, contiguous
  (short calls pass the unscaled transposed view and `hw_scale`, applied to each step's product).
- The forward writes the gate activations over `xw` in place (the caller hands over a fresh array) and
  returns the carried states `hs` (T, B, H) (hs[p] is the state after step p) and the output, which is `hs`
  itself unless a step mask (T, B, 1) marks padding (then padded steps output zeros and keep the state).
- `keep=False` (inference, `no_grad`) returns no cache; with `keep=True` the cache holds exactly what the
  backward reads (see each `*Cache`). The backward takes the unscaled W_hh (G*H, H), returns the gradient
  of the input pre-activations `dxw` (T, B, G*H) in processing order, of the initial state(s), and of
  W_hh / b_hh, computed as one product over all steps after the loop.
"""

from __future__ import annotations

from typing import NamedTuple

from .backend import xp

ACTIVATIONS = {"RNN_TANH": "t", "RNN_RELU": "r", "LSTM": "ssts", "GRU": "sst"}  # s: sigmoid, t: tanh, r: relu


def gate_scale(mode: str, H: int, dtype) -> xp.ndarray:
    """(G*H,) factors folded into W_ih, W_hh and the biases: 1/2 on sigmoid gates (tanh(a/2)), else 1."""
    return xp.concatenate([xp.full(H, 0.5 if k == "s" else 1.0, dtype=dtype) for k in ACTIVATIONS[mode]])


def _sigmoid_from_tanh(block):
    """In place: tanh(a/2) -> s(a) = tanh(a/2) / 2 + 1/2."""
    block *= 0.5
    block += 0.5


def _masked_carry(m, new, old):
    """In place on `new`: the carried state is `new` on real steps (m = 1), `old` on padding (m = 0)."""
    new -= old
    new *= m
    new += old


def _recurrent_weight_grad(dpre, h0, hs):
    """sum_p dpre[p]^T h_{p-1} (G, H) with h_{-1} = h0: one product over all steps but the first."""
    T, B, G = dpre.shape
    dW = dpre[0].T @ h0
    if T > 1:
        dW += dpre[1:].reshape((T - 1) * B, G).T @ hs[:-1].reshape((T - 1) * B, -1)
    return dW


# ----------------------------------------------------------------------------------------------- vanilla RNN
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


# ----------------------------------------------------------------------------------------------------- LSTM
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


# ------------------------------------------------------------------------------------------------------ GRU
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


# ------------------------------------------------------------------------------------ LSTM in column layout
# Training and inference of LSTM layers with B >= columns.MIN_BATCH run in a step-major column layout: every
# per-step array is (K, B) (the gates (4H, B), the states (H, B)) and a sequence is (T, K, B), so a step's
# gates are contiguous runs of rows and each step is a contiguous slice. The step product is
# W (4H, H) @ h (H, B) on the parameters' own (C-contiguous, scaled) layout, which OpenBLAS runs 15-25%
# faster than h (B, H) @ W^T (H, 4H) at these shapes (measured in README, "Performance").
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
