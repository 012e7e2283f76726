"""One direction of one recurrent layer over a whole sequence: forward and hand-derived BPTT, side by side.

Every `*_forward` takes the input projection of all steps at once, `xw` (T, B, G*H) = x W_ih^T + b_ih
(+ b_hh where it can be folded), the initial state (B, H) and an optional step mask (T, B, 1) that is
1 on real steps and 0 on padding. A padded step leaves the state unchanged and outputs zeros, so the
reverse direction of a shorter sequence starts at its own last element, as PyTorch's packed sequences do.

Every `*_backward` takes the gradient of the outputs (T, B, H) and of the final state and returns the
gradient of the pre-activations `dxw` (T, B, G*H) (the caller turns it into dx, dW_ih and db_ih with one
product each), of the initial state, and of W_hh / b_hh, computed as one product over all steps after
the loop. Sigmoid is computed through tanh, sigma(a) = (1 + tanh(a / 2)) / 2, so that one `tanh` call
covers the whole gate block of a step.
"""

from __future__ import annotations

from typing import NamedTuple

from .backend import xp


class StepCache(NamedTuple):
    """What backward needs from forward, indexed by time step t (not processing order)."""

    h_prev: xp.ndarray  # (T, B, H) state entering step t
    acts: xp.ndarray  # (T, B, G*H) gate activations (RNN: the new state)
    extra: tuple  # per-mode arrays, see each forward
    mask: xp.ndarray | None  # (T, B, 1) or None
    reverse: bool


def _order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _sigmoid_tanh_coefs(blocks: str, H: int, dtype) -> tuple[xp.ndarray, xp.ndarray]:
    """Scale and offset vectors (G*H,) so that offset + scale * tanh(scale_in * a) gives each gate's activation.

    `blocks` spells the gate kinds in order, 's' for sigmoid and 't' for tanh (LSTM: "ssts").
    For a sigmoid gate scale = offset = 0.5 (and the pre-activation is halved); for tanh 1 and 0.
    """
    scale = xp.concatenate([xp.full(H, 0.5 if k == "s" else 1.0, dtype=dtype) for k in blocks])
    offset = xp.concatenate([xp.full(H, 0.5 if k == "s" else 0.0, dtype=dtype) for k in blocks])
    return scale, offset


def _masked_state(mask_t, new, old):
    """State after a step: `new` on real steps, `old` where the step is padding."""
    return old + mask_t * (new - old)


# ----------------------------------------------------------------------------------------------- vanilla RNN
def rnn_forward(xw, h0, W_hh, mask, reverse, keep, relu=False):
    """h_t = f(xw_t + h_{t-1} W_hh^T), f = tanh or relu.  xw: (T, B, H) with both biases folded in."""
    T, B, H = xw.shape
    Wt = W_hh.T
    out = xp.empty((T, B, H), dtype=xw.dtype)
    h_prev = xp.empty_like(out) if keep else None
    h = h0
    for t in _order(T, reverse):
        a = out[t]  # the new state is computed in place in the output buffer
        xp.matmul(h, Wt, out=a)
        a += xw[t]
        if relu:
            xp.maximum(a, 0, out=a)
        else:
            xp.tanh(a, out=a)
        if keep:
            h_prev[t] = h
        if mask is not None:
            new = _masked_state(mask[t], a, h)
            a *= mask[t]
            h = new
        else:
            h = a
    cache = StepCache(h_prev, out, (relu,), mask, reverse) if keep else None
    return out, h, cache


def rnn_backward(d_out, d_hT, cache, W_hh):
    T, B, H = d_out.shape
    states, mask, (relu,) = cache.acts, cache.mask, cache.extra
    # f'(a) for all steps at once: relu' = [h > 0], tanh' = 1 - h^2 (padded steps are masked below)
    deriv = (states > 0).astype(states.dtype) if relu else 1.0 - states * states
    dpre = xp.empty((T, B, H), dtype=d_out.dtype)
    dh = d_hT.copy()
    for t in _order(T, not cache.reverse):
        dp = dpre[t]
        xp.add(dh, d_out[t], out=dp)
        if mask is not None:
            dp *= mask[t]
            dh = dh - mask[t] * dh  # the state passes padding unchanged
        else:
            dh = 0
        dp *= deriv[t]
        dh = dh + dp @ W_hh
    flat = dpre.reshape(T * B, H)
    dW_hh = flat.T @ cache.h_prev.reshape(T * B, H)
    return dpre, dh, dW_hh, flat.sum(axis=0)


# ----------------------------------------------------------------------------------------------------- LSTM
def lstm_forward(xw, h0, c0, W_hh, mask, reverse, keep):
    """Gates (i, f, g, o) = (s, s, tanh, s)(xw_t + h_{t-1} W_hh^T);  c_t = f c_{t-1} + i g;  h_t = o tanh(c_t).

    xw: (T, B, 4H) with both biases folded in. Returns (out (T, B, H), h_T, c_T, cache).
    """
    T, B, G = xw.shape
    H = G // 4
    scale, offset = _sigmoid_tanh_coefs("ssts", H, xw.dtype)
    Wt = W_hh.T
    out = xp.empty((T, B, H), dtype=xw.dtype)
    if keep:
        acts = xp.empty((T, B, G), dtype=xw.dtype)
        h_prev, c_prev, tanh_c = (xp.empty((T, B, H), dtype=xw.dtype) for _ in range(3))
    else:
        buf = xp.empty((B, G), dtype=xw.dtype)
    h, c = h0, c0
    for t in _order(T, reverse):
        a = acts[t] if keep else buf
        xp.matmul(h, Wt, out=a)
        a += xw[t]
        a *= scale
        xp.tanh(a, out=a)
        a *= scale
        a += offset
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c_new = f * c
        c_new += i * g
        tc = xp.tanh(c_new)
        h_new = o * tc
        if keep:
            h_prev[t], c_prev[t], tanh_c[t] = h, c, tc
        if mask is not None:
            m = mask[t]
            out[t] = h_new * m
            h, c = _masked_state(m, h_new, h), _masked_state(m, c_new, c)
        else:
            out[t] = h_new
            h, c = h_new, c_new
    cache = StepCache(h_prev, acts, (c_prev, tanh_c), mask, reverse) if keep else None
    return out, h, c, cache


def lstm_backward(d_out, d_hT, d_cT, cache, W_hh):
    T, B, H = d_out.shape
    acts, mask = cache.acts, cache.mask
    c_prev, tanh_c = cache.extra
    # Factors for all steps in a few vectorised calls: gate derivatives s(1-s) / 1-g^2, and d h/d c = o (1 - tanh^2 c)
    deriv = acts * (1.0 - acts)
    g = acts[:, :, 2 * H : 3 * H]
    deriv[:, :, 2 * H : 3 * H] = 1.0 - g * g
    o_dtanh = acts[:, :, 3 * H :] * (1.0 - tanh_c * tanh_c)
    # d pre_{i,f,g} = dc * (g, c_prev, i) * deriv: the three multipliers side by side, (T, B, 3, H)
    mult = xp.stack([g, c_prev, acts[:, :, :H]], axis=2)
    dpre = xp.empty((T, B, 4 * H), dtype=d_out.dtype)
    dh, dc = d_hT.copy(), d_cT.copy()
    for t in _order(T, not cache.reverse):
        dht = dh + d_out[t]
        dct = dc
        if mask is not None:
            m = mask[t]
            dht = dht * m
            dct = dc * m
            dh_pass, dc_pass = dh - m * dh, dc - m * dc
        dct = dct + dht * o_dtanh[t]
        dp = dpre[t]
        xp.multiply(dct[:, None, :], mult[t], out=dp[:, : 3 * H].reshape(B, 3, H))
        xp.multiply(dht, tanh_c[t], out=dp[:, 3 * H :])
        dp *= deriv[t]
        dc = dct * acts[t, :, H : 2 * H]
        dh = dp @ W_hh
        if mask is not None:
            dh += dh_pass
            dc += dc_pass
    flat = dpre.reshape(T * B, 4 * H)
    dW_hh = flat.T @ cache.h_prev.reshape(T * B, H)
    return dpre, dh, dc, dW_hh, flat.sum(axis=0)


# ------------------------------------------------------------------------------------------------------ GRU
def gru_forward(xw, h0, W_hh, b_hh, mask, reverse, keep):
    """r, z = s(xw_{r,z} + (h W_hh^T + b_hh)_{r,z});  n = tanh(xw_n + r (h W_hn^T + b_hn));  h' = (1-z) n + z h.

    xw: (T, B, 3H) with b_ih only (b_hn must stay inside the product with r, as in PyTorch).
    """
    T, B, G = xw.shape
    H = G // 3
    Wt = W_hh.T
    out = xp.empty((T, B, H), dtype=xw.dtype)
    if keep:
        acts = xp.empty((T, B, G), dtype=xw.dtype)  # r, z, n
        hn_all = xp.empty((T, B, H), dtype=xw.dtype)
        h_prev = xp.empty((T, B, H), dtype=xw.dtype)
    else:
        buf = xp.empty((B, G), dtype=xw.dtype)
    hw = xp.empty((B, G), dtype=xw.dtype)
    h = h0
    for t in _order(T, reverse):
        a = acts[t] if keep else buf
        xp.matmul(h, Wt, out=hw)
        hw += b_hh
        rz = a[:, : 2 * H]
        xp.add(xw[t, :, : 2 * H], hw[:, : 2 * H], out=rz)
        rz *= 0.5
        xp.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        xp.multiply(r, hw[:, 2 * H :], out=n)
        n += xw[t, :, 2 * H :]
        xp.tanh(n, out=n)
        h_new = h - n
        h_new *= z
        h_new += n
        if keep:
            h_prev[t] = h
            hn_all[t] = hw[:, 2 * H :]
        if mask is not None:
            out[t] = h_new * mask[t]
            h = _masked_state(mask[t], h_new, h)
        else:
            out[t] = h_new
            h = h_new
    cache = StepCache(h_prev, acts, (hn_all,), mask, reverse) if keep else None
    return out, h, cache


def gru_backward(d_out, d_hT, cache, W_hh):
    """Returns (dxw (T, B, 3H), dh0, dW_hh, db_hh); dxw and the hidden-side gradient differ only in the n block."""
    T, B, H = d_out.shape
    acts, mask = cache.acts, cache.mask
    (hn_all,) = cache.extra
    r, z, n = acts[:, :, :H], acts[:, :, H : 2 * H], acts[:, :, 2 * H :]
    one_minus_z = 1.0 - z
    d_rz = acts[:, :, : 2 * H] * (1.0 - acts[:, :, : 2 * H])  # sigmoid' of r and z
    d_n = 1.0 - n * n
    h_minus_n = cache.h_prev - n
    dpre_x = xp.empty((T, B, 3 * H), dtype=d_out.dtype)
    dpre_h = xp.empty((T, B, 3 * H), dtype=d_out.dtype)
    dh = d_hT.copy()
    for t in _order(T, not cache.reverse):
        dht = dh + d_out[t]
        if mask is not None:
            m = mask[t]
            dht *= m
            dh_pass = dh - m * dh
        dx, dhh = dpre_x[t], dpre_h[t]
        dpn = dx[:, 2 * H :]
        xp.multiply(dht, one_minus_z[t], out=dpn)
        dpn *= d_n[t]
        xp.multiply(dpn, hn_all[t], out=dx[:, :H])  # d r
        xp.multiply(dht, h_minus_n[t], out=dx[:, H : 2 * H])  # d z
        dx[:, : 2 * H] *= d_rz[t]
        dhh[:, : 2 * H] = dx[:, : 2 * H]
        xp.multiply(dpn, r[t], out=dhh[:, 2 * H :])
        dh_new = dhh @ W_hh
        dh_new += dht * z[t]
        if mask is not None:
            dh_new += dh_pass
        dh = dh_new
    flat_h = dpre_h.reshape(T * B, 3 * H)
    dW_hh = flat_h.T @ cache.h_prev.reshape(T * B, H)
    return dpre_x, dh, dW_hh, flat_h.sum(axis=0)
