"""The LSTM's column-layout forward and backward over layers and directions (`RecurrentBase` mixes in
`LSTMColumns`): calls with B >= kernels.columns.MIN_BATCH and T*B >= COPY_MIN_ROWS, training or not
(`RecurrentBase._lstm_columns_apply`); layers pass (T, D*H, B) arrays to `kernels.lstm_forward_columns` /
`lstm_backward_columns`, which run W_hh (4H, H) @ h (H, B) on the parameters' own layout."""

from __future__ import annotations

from ..backend import grad_enabled, xp
from . import kernels
from .kernels.common import _scaled_transpose


class LSTMColumns:
    """`RecurrentBase`'s column-layout LSTM path (see `RecurrentBase` for the attributes it reads)."""

    def _column_weights(self, k, s):
        """scale * W_ih (G, I_k), scale * W_hh (G, H), both C-contiguous, and the folded, scaled bias (G,) or
        None: the parameters' own layout (a frozen layer's inference reads its kept copies, transposed
        back)."""
        if self._frozen is not None and not grad_enabled():
            Wih_t, Whh_t, bias, _, _ = self._frozen[(k, s)]
            return xp.ascontiguousarray(Wih_t.T), xp.ascontiguousarray(Whh_t.T), bias
        scale = self._gate_scale[:, None]
        W_ih, W_hh = self.params[f"weight_ih_l{k}{s}"], self.params[f"weight_hh_l{k}{s}"]
        bias = None
        if self.bias:
            bias = (self.params[f"bias_ih_l{k}{s}"] + self.params[f"bias_hh_l{k}{s}"]) * self._gate_scale
        return W_ih * scale, W_hh * scale, bias

    def _run_lstm_columns(self, x, h0, c0, mask, keep):
        """`_run` for `_lstm_columns_apply` calls: layers pass (T, D*H, B) arrays; x and the output are
        rows."""
        T, B, _ = x.shape
        D, H = self.num_directions, self.hidden_size
        h_n = xp.empty((self.num_layers * D, B, H), dtype=self.dtype)
        c_n = xp.empty_like(h_n)
        mask_c = None if mask is None else mask.transpose(0, 2, 1)  # (T, 1, B)
        layer_cache, inp = [], x
        inp_c = x.transpose(0, 2, 1)  # (T, I, B) view: the projection reads it as is
        for k in range(self.num_layers):
            drop = None
            if k > 0 and self.training and self.dropout > 0:  # drawn in row order, as the row path does
                drop = (self.rng.random((T, B, inp_c.shape[1])) >= self.dropout).astype(self.dtype)
                drop /= 1.0 - self.dropout
                inp_c = xp.multiply(inp_c, drop.transpose(0, 2, 1), out=xp.empty_like(inp_c))
                inp = inp_c
            out = xp.empty((T, D * H, B), dtype=self.dtype)
            dir_caches = []
            for d, s in enumerate(self._suffixes()):
                idx = k * D + d
                W_ih, W_hh, bias = self._column_weights(k, s)
                xw = xp.matmul(W_ih, inp_c)  # (G, I) @ (T, I, B) -> (T, G, B): all steps, one call
                if bias is not None:
                    xw += bias[:, None]
                rev = slice(None, None, -1) if d == 1 else slice(None)
                m = None if mask_c is None else mask_c[rev]
                o, hs, c, cache = kernels.lstm_forward_columns(
                    xw[rev], xp.ascontiguousarray(h0[idx].T), xp.ascontiguousarray(c0[idx].T), W_hh, m, keep
                )
                out[rev, d * H : (d + 1) * H] = o
                h_n[idx] = hs[-1].T
                c_n[idx] = c.T
                dir_caches.append(cache)
            layer_cache.append((inp, drop, dir_caches))
            inp = inp_c = out
        self._cache = (layer_cache, mask, self.batch_first, "columns") if keep else None
        output = xp.ascontiguousarray(out.transpose(0, 2, 1))  # (T, B, D*H)
        output = output.transpose(1, 0, 2) if self.batch_first else output
        return output, h_n, c_n

    def _backward_lstm_columns(self, d_out, d_h, d_c):
        """`_backward` for a column-layout forward: d_out (T, B, D*H) rows, states (L*D, B, H)."""
        layer_cache, mask, _, _ = self._cache
        T, B, _ = d_out.shape
        D, H, L, G = self.num_directions, self.hidden_size, self.num_layers, 4 * self.hidden_size
        dh0, dc0 = xp.empty_like(d_h), xp.empty_like(d_h)
        d_out_c = xp.ascontiguousarray(d_out.transpose(0, 2, 1))  # (T, D*H, B)
        if mask is not None:
            d_out_c *= mask.transpose(0, 2, 1)  # padded outputs are constant zeros
        for k in reversed(range(L)):
            inp, drop, dir_caches = layer_cache[k]
            I = inp.shape[2] if k == 0 else inp.shape[1]  # layer 0 caches the caller's (T, B, I) rows
            d_inp = xp.empty((T, I, B), dtype=self.dtype)
            for d, s in enumerate(self._suffixes()):
                idx = k * D + d
                rev = slice(None, None, -1) if d == 1 else slice(None)
                cache = dir_caches[d]
                W_hh, W_ih = self.params[f"weight_hh_l{k}{s}"], self.params[f"weight_ih_l{k}{s}"]
                dpre, dh, dc = kernels.lstm_backward_columns(
                    d_out_c[rev, d * H : (d + 1) * H], xp.ascontiguousarray(d_h[idx].T),
                    xp.ascontiguousarray(d_c[idx].T), cache, _scaled_transpose(W_hh, self._ones),
                )
                dh0[idx], dc0[idx] = dh.T, dc.T
                # weight gradients: one product each over all steps, in processing order (G, T*B)
                flat = xp.ascontiguousarray(dpre.transpose(1, 0, 2)).reshape(G, T * B)
                h_prev = xp.empty((H, T, B), dtype=self.dtype)
                h_prev[:, 0] = cache.h0
                h_prev[:, 1:] = cache.hs[:-1].transpose(1, 0, 2)
                self.grads[f"weight_hh_l{k}{s}"] = flat @ h_prev.reshape(H, T * B).T
                if k == 0:
                    x_flat = xp.ascontiguousarray(inp[rev]).reshape(T * B, I)
                else:
                    x_flat = xp.ascontiguousarray(inp[rev].transpose(1, 0, 2)).reshape(I, T * B).T
                self.grads[f"weight_ih_l{k}{s}"] = flat @ x_flat
                if self.bias:
                    db = flat.sum(axis=1)
                    self.grads[f"bias_ih_l{k}{s}"] = db
                    self.grads[f"bias_hh_l{k}{s}"] = db.copy()
                W_ih_t = _scaled_transpose(W_ih, self._ones)  # (I, G)
                if d == 0:
                    xp.matmul(W_ih_t, dpre, out=d_inp)  # (I, G) @ (T, G, B) -> (T, I, B)
                else:
                    d_inp[rev] += xp.matmul(W_ih_t, dpre)
            if drop is not None:
                d_inp *= drop.transpose(0, 2, 1)
            d_out_c = d_inp
        return xp.ascontiguousarray(d_out_c.transpose(0, 2, 1)), dh0, dc0
