"""The row-layout forward and backward over layers and directions (`RecurrentBase` mixes in `RowPath`): every
kind and call the column layout does not take (see `RecurrentBase._run`); arrays are (T, B, feature), each
direction runs a `kernels` sequence kernel in processing order (the GRU's inference at B >= MIN_BATCH with
weight copies runs `kernels.gru_forward_columns` inside this loop)."""

from __future__ import annotations

from ..backend import xp
from . import kernels


class RowPath:
    """`RecurrentBase`'s row-layout forward/backward (see `RecurrentBase` for the attributes it reads)."""

    def _run_rows(self, x, h0, c0, mask, keep):
        """`_run` for the row layout: x (T, B, I) validated -> (output, h_n, c_n or None)."""
        T, B, _ = x.shape
        D, H = self.num_directions, self.hidden_size
        h_n = xp.empty((self.num_layers * D, B, H), dtype=self.dtype)
        c_n = xp.empty_like(h_n) if self.mode == "LSTM" else None
        layer_cache, inp = [], x
        for k in range(self.num_layers):
            drop = None
            if k > 0 and self.training and self.dropout > 0:
                drop = (self.rng.random(inp.shape) >= self.dropout).astype(self.dtype) / (1.0 - self.dropout)
                inp = inp * drop
            out = xp.empty((T, B, D * H), dtype=self.dtype)
            dir_caches = []
            for d, s in enumerate(self._suffixes()):
                idx = k * D + d
                Wih_t, Whh_t, bias, b_hn, step_scale = self._forward_weights(k, s, T * B)
                # the reverse direction runs the same cell on time-reversed views (processing order)
                rev = slice(None, None, -1) if d == 1 else slice(None)
                m = None if mask is None else mask[rev]
                if self._columns_apply(keep, T, B):
                    o, h, c = self._columns_forward(inp, Wih_t, Whh_t, bias, b_hn, h0[idx], c0[idx], rev, m)
                    cache = None
                else:
                    xw = (inp.reshape(T * B, -1) @ Wih_t).reshape(T, B, -1)  # one product for all steps
                    if bias is not None:
                        xw += bias
                    if step_scale is not None:
                        xw *= step_scale
                    o, h, c, cache = self._cell_forward(xw[rev], h0[idx], c0[idx], Whh_t, b_hn, step_scale, m,
                                                        keep)
                out[rev, :, d * H : (d + 1) * H] = o
                h_n[idx] = h
                if c_n is not None:
                    c_n[idx] = c
                dir_caches.append(cache)
            layer_cache.append((inp, drop, dir_caches))
            inp = out
        self._cache = (layer_cache, mask, self.batch_first) if keep else None
        output = inp.transpose(1, 0, 2) if self.batch_first else inp
        return output, h_n, c_n

    def _columns_forward(self, inp, Wih_t, Whh_t, bias, b_hn, h0, c0, rev, mask):
        """-> (output (T, B, H), h_T, c_T or None) through `columns`; same values as `_cell_forward`."""
        T, B, _ = inp.shape
        xw = (Wih_t.T @ inp.reshape(T * B, -1).T).reshape(-1, T, B)  # (G, I) @ (I, T*B): one product
        if bias is not None:
            xw += bias[:, None, None]
        out, h = kernels.gru_forward_columns(xw[:, rev], h0, Whh_t, b_hn, mask)
        return out, h, None

    def _cell_forward(self, xw, h0, c0, Whh_t, b_hn, step_scale, mask, keep):
        """-> (output (T, B, H), h_T, c_T or None, cache), all in processing order."""
        if self.mode == "LSTM":
            out, hs, c, cache = kernels.lstm_forward(xw, h0, c0, Whh_t, mask, keep, step_scale)
            return out, hs[-1], c, cache
        if self.mode == "GRU":
            out, hs, cache = kernels.gru_forward(xw, h0, Whh_t, b_hn, mask, keep, step_scale)
        else:
            out, hs, cache = kernels.rnn_forward(xw, h0, Whh_t, mask, keep, relu=self.mode == "RNN_RELU")
        return out, hs[-1], None, cache

    def _backward_rows(self, d_out, d_h, d_c):
        """`_backward` for a row-layout forward: d_out (T, B, D*H) in time-major order -> (dx, dh0, dc0)."""
        layer_cache, mask = self._cache[:2]
        D, H, L = self.num_directions, self.hidden_size, self.num_layers
        dh0, dc0 = xp.empty(d_h.shape, self.dtype), xp.empty(d_h.shape, self.dtype)
        if mask is not None:
            d_out = d_out * mask  # padded outputs are constant zeros
        for k in reversed(range(L)):
            inp, drop, dir_caches = layer_cache[k]
            d_inp = xp.zeros(inp.shape, self.dtype)
            for d, s in enumerate(self._suffixes()):
                idx = k * D + d
                rev = slice(None, None, -1) if d == 1 else slice(None)  # processing order, as in forward
                dpre, dh0[idx], dc0[idx] = self._cell_backward(
                    d_out[rev, :, d * H : (d + 1) * H], d_h[idx], d_c[idx], dir_caches[d], k, s
                )
                self._accumulate_input_grads(dpre, inp[rev], d_inp[rev], k, s)
            if drop is not None:
                d_inp *= drop
            d_out = d_inp
        return d_out, dh0, dc0

    def _cell_backward(self, d_o, d_hT, d_cT, cache, k, s):
        W_hh = self.params[f"weight_hh_l{k}{s}"]
        if self.mode == "LSTM":
            dxw, dh0, dc0, dW, db = kernels.lstm_backward(d_o, d_hT, d_cT, cache, W_hh)
        elif self.mode == "GRU":
            dxw, dh0, dW, db = kernels.gru_backward(d_o, d_hT, cache, W_hh)
            dc0 = 0.0
        else:
            dxw, dh0, dW, db = kernels.rnn_backward(d_o, d_hT, cache, W_hh)
            dc0 = 0.0
        self.grads[f"weight_hh_l{k}{s}"] = dW
        if self.bias:
            self.grads[f"bias_hh_l{k}{s}"] = db
        return dxw, dh0, dc0

    def _accumulate_input_grads(self, dxw, inp, d_inp, k, s):
        """dW_ih = dxw^T x, db_ih = sum dxw, dx += dxw W_ih: one product each over all steps.

        dxw (T, B, G) is in processing order; `inp` and `d_inp` are views in the same order (reversed for
        the reverse direction; a reversed `inp` is copied once to be flattened for the product).
        """
        T, B, G = dxw.shape
        flat = dxw.reshape(T * B, G)
        W_ih = self.params[f"weight_ih_l{k}{s}"]
        self.grads[f"weight_ih_l{k}{s}"] = flat.T @ xp.ascontiguousarray(inp).reshape(T * B, -1)
        if self.bias:
            self.grads[f"bias_ih_l{k}{s}"] = flat.sum(axis=0)
        d_inp += (flat @ W_ih).reshape(T, B, -1)
