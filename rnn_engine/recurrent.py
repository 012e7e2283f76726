"""Multi-layer, optionally bidirectional RNN / LSTM / GRU layers shaped like torch.nn.RNN / LSTM / GRU.

Parameters are named and laid out exactly as PyTorch's (`weight_ih_l{k}[_reverse]`, gate order i,f,g,o for
LSTM and r,z,n for GRU), so a PyTorch state_dict converted to NumPy loads unchanged and gives the same
outputs. Backpropagation through time is written by hand in `cells.py`.
"""

from __future__ import annotations

import math
from typing import Any

from . import cells, columns
from .backend import as_generator, grad_enabled, xp
from .errors import InvalidInput
from .init import RECURRENT_INITS, recurrent_matrix, uniform, xavier_uniform
from .validate import (
    as_float_array,
    as_lengths,
    check_dtype,
    check_positive_int,
    check_probability,
    check_shape,
)

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
COPY_MIN_ROWS = 64  # T*B from which the forward copies its weights contiguously (see _forward_weights)


def _scaled_transpose(W, scale, rows: int = 128):
    """(scale[:, None] * W)^T as a new C-contiguous (H, G) array, copied in blocks of `rows` rows.

    A plain transposing copy of a (2048, 512) matrix walks memory with a large stride and takes about twice
    as long as this blocked copy, whose blocks stay in cache.
    """
    G, H = W.shape
    out = xp.empty((H, G), dtype=W.dtype)
    for i in range(0, G, rows):
        xp.multiply(W[i : i + rows].T, scale[i : i + rows], out=out[:, i : i + rows])
    return out


class StepWeights:
    """A layer's parameters copied for repeated `step` calls (`RecurrentBase.step_weights()`).

    `layers[k]` = (W_ih^T (I_k, G), W_hh^T (H, G), bias (G,) or None, b_hn, None): contiguous, gate scale
    folded in, as `_forward_weights` lays them out for a long forward pass.
    """

    def __init__(self, layer: RecurrentBase, layers: tuple) -> None:
        self.layer, self.layers = layer, layers
        self._scratch: dict[int, tuple] = {}  # B -> (a (B, G), hw (B, G), tanh_c (B, H)): not thread-safe

    def scratch(self, B: int) -> tuple:
        """The kernel's buffers for B rows (a (B, G), hw (B, G), tanh_c (B, H)), made once per B."""
        buffers = self._scratch.get(B)
        if buffers is None:
            layer = self.layer
            G, H, dtype = layer.gate_count * layer.hidden_size, layer.hidden_size, layer.dtype
            buffers = self._scratch[B] = (xp.empty((B, G), dtype), xp.empty((B, G), dtype),
                                          xp.empty((B, H), dtype))
        return buffers

    def step_into(self, inp, h0, c0, h_n, c_n, xw=None) -> None:
        """One inference step of B rows into preallocated h_n (and c_n, LSTM) (L, B, H); no validation, no
        allocation: the bare kernel of `step` (same arithmetic). inp (B, I): layer 0's input, or xw (B, G)
        its scaled, biased projection (`input_table` rows; `scratch(B)[0]` itself is not copied)."""
        a, hw, tc = self.scratch(h0.shape[1])
        mode = self.layer.mode
        for k, (Wih_t, Whh_t, bias, b_hn, scale) in enumerate(self.layers):
            if k == 0 and xw is not None:
                if xw is not a:
                    xp.copyto(a, xw)
            else:
                xp.matmul(inp if k == 0 else h_n[k - 1], Wih_t, out=a)
                if bias is not None:
                    a += bias
            xp.matmul(h0[k], Whh_t, out=hw)  # all gates in one product
            if scale is not None:
                a *= scale
                hw *= scale
            if mode == "GRU":
                cells.gru_cell(a, hw, b_hn, h0[k], tc, h_n[k])
            else:
                a += hw
                if mode == "LSTM":
                    cells.lstm_cell(a, c0[k], c_n[k], tc, h_n[k])
                else:
                    cells.rnn_cell(a, mode == "RNN_RELU")
                    h_n[k] = a

    def input_table(self, embedding) -> xp.ndarray:
        """Layer 0's scaled, biased input projection of every row of `embedding` (V, I) -> (V, G).

        `table[ids]` is, up to rounding, what `step` computes from `x = embedding[ids]`; as a lookup a row
        never depends on the other rows of a batch, and a language model's first product disappears
        (pass the rows as `step(..., xw=table[ids])`).
        """
        Wih_t, _, bias, _, _ = self.layers[0]
        emb = as_float_array("embedding", embedding, Wih_t.dtype, 2)
        if emb.shape[1] != Wih_t.shape[0]:
            raise InvalidInput(f"embedding: expected shape (V, {Wih_t.shape[0]}), got {emb.shape}")
        table = emb @ Wih_t
        if bias is not None:
            table += bias
        return table


class RecurrentBase:
    """Shared parameter creation, validation, forward/backward over layers and directions, and state dicts.

    Args:
        input_size: features per step of the input, I.
        hidden_size: features of the hidden state, H.
        num_layers: stacked layers; layer k > 0 reads the (T, B, D*H) output of layer k-1.
        bias: use b_ih and b_hh.
        batch_first: input and output are (B, T, feature) instead of (T, B, feature); states never are.
        dropout: probability of dropping each output of every layer but the last, in training mode.
        bidirectional: add a reverse direction (D = 2); outputs are [forward, reverse] along the last axis.
        dtype: float32 (default) or float64.
        seed: int or numpy.random.Generator for initialisation and dropout.
        init: "default" (PyTorch's U(-1/sqrt(H), 1/sqrt(H))), "xavier", "orthogonal" or "identity"
            (recurrent weights; identity is IRNN, meant for ReLU RNNs).

    Inputs: x (T, B, I) or (B, T, I); h0 (L*D, B, H) or None (zeros); lengths (B,) or None.
    Outputs: output (T, B, D*H) (or batch-first), h_n (L*D, B, H); padded steps output zeros.
    """

    mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        dtype: Any = xp.float32,
        seed: int | xp.random.Generator | None = None,
        init: str = "default",
    ) -> None:
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        for name, flag in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise InvalidInput(f"{name}: expected a bool, got {flag!r}")
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout = check_probability("dropout", dropout)
        if init not in RECURRENT_INITS:
            raise InvalidInput(f"init: expected one of {RECURRENT_INITS}, got {init!r}")
        self.dtype = check_dtype(dtype)
        self.rng = as_generator(seed)
        self.gate_count = GATES[self.mode]
        self.num_directions = 2 if bidirectional else 1
        self.training = True
        self.params: dict[str, xp.ndarray] = {}
        self.grads: dict[str, xp.ndarray] = {}
        self._cache = None
        self._frozen: dict[tuple[int, str], tuple] | None = None  # see freeze()
        # (G,) sigmoid halving folded into the weights; depends on the mode only, never on parameter values
        self._gate_scale = cells.gate_scale(self.mode, self.hidden_size, self.dtype)
        self._ones = xp.ones(self.gate_count * self.hidden_size, dtype=self.dtype)  # unscaled transposes
        self.reset_parameters(init)

    # ------------------------------------------------------------------------------------------- parameters
    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.num_directions]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of every parameter, in PyTorch's state_dict order."""
        G, H, D = self.gate_count * self.hidden_size, self.hidden_size, self.num_directions
        shapes: dict[str, tuple[int, ...]] = {}
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else D * H
            for s in self._suffixes():
                shapes[f"weight_ih_l{k}{s}"] = (G, in_size)
                shapes[f"weight_hh_l{k}{s}"] = (G, H)
                if self.bias:
                    shapes[f"bias_ih_l{k}{s}"] = (G,)
                    shapes[f"bias_hh_l{k}{s}"] = (G,)
        return shapes

    def reset_parameters(self, init: str = "default") -> None:
        """Draw every parameter anew: U(-1/sqrt(H), 1/sqrt(H)) except the recurrent weights under `init`."""
        if init not in RECURRENT_INITS:
            raise InvalidInput(f"init: expected one of {RECURRENT_INITS}, got {init!r}")
        H, bound = self.hidden_size, 1.0 / math.sqrt(self.hidden_size)
        for name, shape in self.param_shapes().items():
            if name.startswith("weight_hh") and init != "default":
                value = recurrent_matrix(init, self.rng, self.gate_count, H, self.dtype)
            elif name.startswith("weight_ih") and init == "xavier":
                value = xp.concatenate(
                    [xavier_uniform(self.rng, (H, shape[1]), self.dtype) for _ in range(self.gate_count)]
                )
            elif name.startswith("bias") and init == "identity":
                value = xp.zeros(shape, dtype=self.dtype)
            else:
                value = uniform(self.rng, shape, bound, self.dtype)
            self.params[name] = value
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}
        if self._frozen is not None:  # kept copies follow the parameters this layer sets itself
            self.freeze()

    def state_dict(self) -> dict[str, xp.ndarray]:
        """Copies of every parameter under PyTorch's names."""
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load arrays named and shaped as PyTorch names them; checks everything before changing anything."""
        if not isinstance(state, dict):
            raise InvalidInput(f"state: expected a dict of arrays, got {type(state).__name__}")
        shapes = self.param_shapes()
        missing = [k for k in shapes if k not in state]
        extra = [k for k in state if k not in shapes]
        if missing or extra:
            raise InvalidInput(f"state: missing keys {missing}, unexpected keys {extra}")
        staged = {}
        for name, shape in shapes.items():
            arr = as_float_array(f"state[{name!r}]", state[name], self.dtype, len(shape))
            check_shape(f"state[{name!r}]", arr, shape)
            staged[name] = arr.copy()
        for name, arr in staged.items():  # in place, so optimizers holding the arrays see the new values
            self.params[name][...] = arr
        if self._frozen is not None:
            self.freeze()

    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def train(self, mode: bool = True) -> RecurrentBase:
        self.training = bool(mode)
        return self

    def eval(self) -> RecurrentBase:
        return self.train(False)

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g[...] = 0

    def __repr__(self) -> str:
        extra = "" if self.mode not in ("RNN_TANH", "RNN_RELU") else f", nonlinearity={self.nonlinearity!r}"
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
            f"{extra}, bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, "
            f"bidirectional={self.bidirectional}, dtype={self.dtype.name})"
        )

    # ------------------------------------------------------------------------------------------- validation
    def _check_input(self, x, h0, c0, lengths):
        x = as_float_array("x", x, self.dtype, 3)
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape
        if I != self.input_size:
            raise InvalidInput(
                f"x: expected {self.input_size} features in the last axis, got {I} (shape {x.shape})"
            )
        if T == 0 or B == 0:
            raise InvalidInput(f"x: expected at least one step and one sequence, got shape {x.shape}")
        state_shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        states = []
        for name, s in (("h0", h0), ("c0", c0)):
            if s is None:
                states.append(xp.zeros(state_shape, dtype=self.dtype))
            else:
                s = as_float_array(name, s, self.dtype, 3)
                check_shape(name, s, state_shape)
                states.append(s)
        lengths = as_lengths(lengths, B, T)
        mask = None
        if lengths is not None and lengths.min() < T:
            mask = (xp.arange(T)[:, None] < lengths[None, :]).astype(self.dtype)[:, :, None]  # (T, B, 1)
        return xp.ascontiguousarray(x), states[0], states[1], mask

    # ---------------------------------------------------------------------------------------------- forward
    def _forward_weights(self, k, s, rows):
        """W_ih^T (I_k, G), W_hh^T (H, G), folded bias (G,), b_hn and the per-step scale still to apply.

        With at least COPY_MIN_ROWS = T*B rows, contiguous copies with `gate_scale` folded in (step scale
        None): the contiguous transpose makes the per-step product about 1.5-2x faster with OpenBLAS than
        the strided view, and the copy (G (I_k + H) elements) is small next to T products of
        (B, H) x (H, G). Short calls (a prompt of a few tokens at batch 1) use transposed views of the
        parameters and apply the scale to the products instead, so they neither pay for nor hold a copy.
        Nothing is kept across calls unless the layer is frozen (`freeze()`, inference only): optimizers
        update the parameters in place, so a weight-derived cache could silently go stale.
        """
        W_ih, W_hh = self.params[f"weight_ih_l{k}{s}"], self.params[f"weight_hh_l{k}{s}"]
        scale = self._gate_scale
        copy = rows >= COPY_MIN_ROWS
        if copy and self._frozen is not None and not grad_enabled():
            return self._frozen[(k, s)]
        step_scale = None if copy or self.mode not in ("LSTM", "GRU") else scale
        if copy:
            Wih_t = _scaled_transpose(W_ih, scale)
            Whh_t = _scaled_transpose(W_hh, scale)  # the per-step products want it contiguous
        else:
            Wih_t, Whh_t = W_ih.T, W_hh.T
        if not self.bias:
            return Wih_t, Whh_t, None, 0.0, step_scale
        b_ih, b_hh = self.params[f"bias_ih_l{k}{s}"], self.params[f"bias_hh_l{k}{s}"]
        b_hn = 0.0
        if self.mode == "GRU":  # b_hn stays inside r * (h W_hn^T + b_hn); the r, z blocks of b_hh fold in
            H = self.hidden_size
            bias, b_hn = b_ih.copy(), b_hh[2 * H :]
            bias[: 2 * H] += b_hh[: 2 * H]
        else:
            bias = b_ih + b_hh
        return Wih_t, Whh_t, bias * scale if copy else bias, b_hn, step_scale

    def _run(self, x, h0, c0, lengths):
        x, h0, c0, mask = self._check_input(x, h0, c0, lengths)
        keep = grad_enabled()
        T, B, _ = x.shape
        if self._lstm_columns_apply(T, B):
            return self._run_lstm_columns(x, h0, c0, mask, keep)
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

    def _columns_apply(self, keep, T, B):
        """Inference of GRU with contiguous weight copies and B >= columns.MIN_BATCH: column layout (the LSTM
        takes `_lstm_columns_apply`'s path for training and inference alike)."""
        return not keep and self.mode == "GRU" and B >= columns.MIN_BATCH and T * B >= COPY_MIN_ROWS

    def _lstm_columns_apply(self, T, B):
        """LSTM calls with B >= columns.MIN_BATCH and T*B >= COPY_MIN_ROWS, training or not: column layout
        (`cells.lstm_forward_columns` / `lstm_backward_columns`); smaller ones keep the row layout."""
        return self.mode == "LSTM" and B >= columns.MIN_BATCH and T * B >= COPY_MIN_ROWS

    def _columns_forward(self, inp, Wih_t, Whh_t, bias, b_hn, h0, c0, rev, mask):
        """-> (output (T, B, H), h_T, c_T or None) through `columns`; same values as `_cell_forward`."""
        T, B, _ = inp.shape
        xw = (Wih_t.T @ inp.reshape(T * B, -1).T).reshape(-1, T, B)  # (G, I) @ (I, T*B): one product
        if bias is not None:
            xw += bias[:, None, None]
        out, h = columns.gru_forward_columns(xw[:, rev], h0, Whh_t, b_hn, mask)
        return out, h, None

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
                o, hs, c, cache = cells.lstm_forward_columns(
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
                dpre, dh, dc = cells.lstm_backward_columns(
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

    def _cell_forward(self, xw, h0, c0, Whh_t, b_hn, step_scale, mask, keep):
        """-> (output (T, B, H), h_T, c_T or None, cache), all in processing order."""
        if self.mode == "LSTM":
            out, hs, c, cache = cells.lstm_forward(xw, h0, c0, Whh_t, mask, keep, step_scale)
            return out, hs[-1], c, cache
        if self.mode == "GRU":
            out, hs, cache = cells.gru_forward(xw, h0, Whh_t, b_hn, mask, keep, step_scale)
        else:
            out, hs, cache = cells.rnn_forward(xw, h0, Whh_t, mask, keep, relu=self.mode == "RNN_RELU")
        return out, hs[-1], None, cache

    def forward(self, x, h0=None, lengths=None):
        """Run the whole sequence; returns (output, h_n). See the class docstring for shapes."""
        output, h_n, _ = self._run(x, h0, None, lengths)
        return output, h_n

    __call__ = forward

    # ----------------------------------------------------------------------------------- one step (inference)
    def freeze(self) -> RecurrentBase:
        """Keep the contiguous, pre-scaled weight copies that inference makes (forwards under `no_grad()`
        with T*B >= COPY_MIN_ROWS, `step_weights()`) instead of making them on every call: for serving a
        model whose parameters no longer change. Until `unfreeze()`, inference does NOT see changes of the
        parameters; forwards outside `no_grad()` (training) never use the kept copies."""
        self._frozen = None
        self._frozen = {(k, s): self._copies(k, s) for k in range(self.num_layers) for s in self._suffixes()}
        return self

    def unfreeze(self) -> RecurrentBase:
        """Drop the copies kept by `freeze()`: inference copies the current parameters per call again."""
        self._frozen = None
        return self

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def step_weights(self) -> StepWeights:
        """Frozen copies of the parameters laid out for repeated `step` calls (serving, generation).

        Each layer's W_ih^T and W_hh^T contiguous with the gate scale folded in, biases folded, as a long
        forward pass uses them: a step's products run 1.3-1.6x faster than on the parameters' transposed views
        with OpenBLAS at 12-64 rows. Copies, so they do not follow later changes of the parameters (optimizer
        steps, load_state_dict): build new ones after those.
        """
        if self.bidirectional:
            raise InvalidInput("step_weights: expected a unidirectional layer, got a bidirectional one")
        if self._frozen is not None:  # a frozen layer's copies serve its steps too
            return StepWeights(self, tuple(self._frozen[(k, "")] for k in range(self.num_layers)))
        return StepWeights(self, tuple(self._copies(k, "") for k in range(self.num_layers)))

    def _copies(self, k, s) -> tuple:
        """`_forward_weights` of a long forward pass as new arrays (b_hn too: it is a view of b_hh there)."""
        Wih_t, Whh_t, bias, b_hn, scale = self._forward_weights(k, s, COPY_MIN_ROWS)
        return Wih_t, Whh_t, bias, xp.array(b_hn, dtype=self.dtype), scale

    def _step(self, x, h0, c0, weights=None, xw=None):
        """Generation fast path: x (B, I), states (L, B, H) -> (y (B, H), h_n, c_n); caches nothing.

        Same arithmetic as `forward` on one step of B rows. With `weights` (`step_weights()`) the products
        use its contiguous copies; without, the parameters' transposed views (at batch 1 the products are
        matrix-vector products bound by reading the weights once, and nothing is copied per call).
        `xw` (B, G) replaces layer 0's input projection (scaled, biased: `StepWeights.input_table` rows).
        """
        if self.bidirectional:
            raise InvalidInput("step: expected a unidirectional layer, got a bidirectional one (use forward)")
        if weights is not None and (not isinstance(weights, StepWeights) or weights.layer is not self):
            other = " of another layer" if isinstance(weights, StepWeights) else ""
            raise InvalidInput("weights: expected this layer's step_weights(), got "
                               f"{type(weights).__name__}{other}")
        G = self.gate_count * self.hidden_size
        if xw is not None:
            if weights is None:
                raise InvalidInput("xw: a precomputed input projection needs weights=step_weights()")
            inp = as_float_array("xw", xw, self.dtype, 2)
            if inp.shape[1] != G or inp.shape[0] == 0:
                raise InvalidInput(f"xw: expected shape (B >= 1, {G}), got {inp.shape}")
        else:
            inp = as_float_array("x", x, self.dtype, 2)
            if inp.shape[1] != self.input_size or inp.shape[0] == 0:
                raise InvalidInput(f"x: expected shape (B >= 1, {self.input_size}), got {inp.shape}")
        B = inp.shape[0]
        L, H, lstm = self.num_layers, self.hidden_size, self.mode == "LSTM"
        h0, c0 = self._step_state("h0" if not lstm else "hx[0]", h0, B), self._step_state("hx[1]", c0, B)
        h_n = xp.empty((L, B, H), dtype=self.dtype)
        c_n = xp.empty_like(h_n) if lstm else None
        if weights is not None and not (self.training and self.dropout > 0):  # the bare kernel
            weights.step_into(inp, h0, c0, h_n, c_n, xw=inp if xw is not None else None)
            return h_n[-1].copy(), h_n, c_n
        layers = weights.layers if weights is not None else [self._forward_weights(k, "", 1)
                                                             for k in range(L)]
        for k, (Wih_t, Whh_t, bias, b_hn, step_scale) in enumerate(layers):
            if k > 0 and self.training and self.dropout > 0:
                keep_mask = self.rng.random(inp.shape) >= self.dropout
                inp = inp * (keep_mask / (1.0 - self.dropout)).astype(self.dtype)
            if k == 0 and xw is not None:
                a = inp.copy()
            else:
                a = inp @ Wih_t  # (B, G)
                if bias is not None:
                    a += bias
            hw = h0[k] @ Whh_t  # (B, G): all gates in one product
            if step_scale is not None:
                a *= step_scale
                hw *= step_scale
            if self.mode == "GRU":
                cells.gru_cell(a, hw, b_hn, h0[k], xp.empty((B, H), self.dtype), h_n[k])
            else:
                a += hw
                if lstm:
                    cells.lstm_cell(a, c0[k], c_n[k], xp.empty((B, H), self.dtype), h_n[k])
                else:
                    h_n[k] = cells.rnn_cell(a, self.mode == "RNN_RELU")
            inp = h_n[k]
        return h_n[-1].copy(), h_n, c_n

    def _step_state(self, name, s, B):
        shape = (self.num_layers, B, self.hidden_size)
        if s is None:
            return xp.zeros(shape, dtype=self.dtype)
        s = as_float_array(name, s, self.dtype, 3)
        check_shape(name, s, shape)
        return s

    # --------------------------------------------------------------------------------------------- backward
    def _backward(self, d_output, d_h_n, d_c_n):
        if self._cache is None:
            raise InvalidInput(
                "backward: no forward pass to differentiate (call forward first, outside no_grad())"
            )
        layer_cache, mask, batch_first = self._cache[:3]
        first_inp = layer_cache[0][0]
        T, B, _ = first_inp.shape
        D, H, L = self.num_directions, self.hidden_size, self.num_layers
        state_shape = (L * D, B, H)
        d_out = as_float_array("d_output", d_output, self.dtype, 3)
        check_shape("d_output", d_out, (B, T, D * H) if batch_first else (T, B, D * H))  # as the output was
        if batch_first:
            d_out = d_out.transpose(1, 0, 2)
        zeros = xp.zeros(state_shape, self.dtype)
        d_h = zeros if d_h_n is None else as_float_array("d_h_n", d_h_n, self.dtype, 3)
        d_c = zeros if d_c_n is None else as_float_array("d_c_n", d_c_n, self.dtype, 3)
        check_shape("d_h_n", d_h, state_shape)
        check_shape("d_c_n", d_c, state_shape)
        dh0, dc0 = xp.empty(state_shape, self.dtype), xp.empty(state_shape, self.dtype)
        if len(self._cache) == 4:  # a column-layout LSTM forward
            dx, dh0, dc0 = self._backward_lstm_columns(d_out, d_h, d_c)
            return (dx.transpose(1, 0, 2) if batch_first else dx), dh0, dc0
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
        dx = d_out.transpose(1, 0, 2) if batch_first else d_out
        return dx, dh0, dc0

    def _cell_backward(self, d_o, d_hT, d_cT, cache, k, s):
        W_hh = self.params[f"weight_hh_l{k}{s}"]
        if self.mode == "LSTM":
            dxw, dh0, dc0, dW, db = cells.lstm_backward(d_o, d_hT, d_cT, cache, W_hh)
        elif self.mode == "GRU":
            dxw, dh0, dW, db = cells.gru_backward(d_o, d_hT, cache, W_hh)
            dc0 = 0.0
        else:
            dxw, dh0, dW, db = cells.rnn_backward(d_o, d_hT, cache, W_hh)
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

    def step(self, x, h=None, weights=None, xw=None):
        """One step for generation: x (B, I), h (L, B, H) or None -> (y (B, H), h_n (L, B, H)); no cache.

        `weights`: `step_weights()` to reuse across calls; `xw`: layer 0's projected input instead of x.
        """
        y, h_n, _ = self._step(x, h, None, weights, xw)
        return y, h_n

    def backward(self, d_output, d_h_n=None):
        """BPTT through the last forward. Fills `self.grads`; returns (dx, dh0)."""
        dx, dh0, _ = self._backward(d_output, d_h_n, None)
        return dx, dh0


class RNN(RecurrentBase):
    """Elman RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), f = tanh or relu.

    Examples:
        >>> rnn = RNN(10, 20, num_layers=2, seed=0)
        >>> out, h_n = rnn(np.zeros((5, 3, 10)))   # out (5, 3, 20), h_n (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 *args, **kwargs) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise InvalidInput(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, num_layers, *args, **kwargs)


class GRU(RecurrentBase):
    """GRU as PyTorch defines it (gates r, z, n):
    r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.
    """

    mode = "GRU"


class LSTM(RecurrentBase):
    """LSTM as PyTorch defines it (gates i, f, g, o): c' = f * c + i * g, h' = o * tanh(c').

    `forward(x, hx=None, lengths=None)` takes hx = (h0, c0) and returns (output, (h_n, c_n));
    `backward(d_output, d_h_n=None, d_c_n=None)` returns (dx, (dh0, dc0)).
    Extra argument: forget_bias, added to b_ih's forget block at initialisation (None keeps PyTorch's).
    """

    mode = "LSTM"

    def __init__(self, *args, forget_bias: float | None = None, **kwargs) -> None:
        if forget_bias is not None and (
            isinstance(forget_bias, bool)
            or not isinstance(forget_bias, int | float | xp.integer | xp.floating)
            or not math.isfinite(forget_bias)
        ):
            raise InvalidInput(f"forget_bias: expected a finite number or None, got {forget_bias!r}")
        self.forget_bias = forget_bias
        super().__init__(*args, **kwargs)

    def reset_parameters(self, init: str = "default") -> None:
        super().reset_parameters(init)
        if self.forget_bias is not None and self.bias:
            H = self.hidden_size
            for name, p in self.params.items():
                if name.startswith("bias_ih"):
                    p[H : 2 * H] = self.forget_bias
                elif name.startswith("bias_hh"):
                    p[H : 2 * H] = 0.0

    def forward(self, x, hx=None, lengths=None):
        if hx is None:
            h0 = c0 = None
        elif isinstance(hx, tuple | list) and len(hx) == 2:
            h0, c0 = hx
        else:
            raise InvalidInput("hx: expected a pair (h0, c0) of (num_layers*D, B, H) arrays, or None")
        output, h_n, c_n = self._run(x, h0, c0, lengths)
        return output, (h_n, c_n)

    __call__ = forward

    def step(self, x, hx=None, weights=None, xw=None):
        """One step for generation: x (B, I), hx = (h, c) (L, B, H) or None -> (y (B, H), (h_n, c_n)).

        `weights`: `step_weights()` to reuse across calls; `xw`: layer 0's projected input instead of x.
        """
        h0, c0 = (None, None) if hx is None else hx
        y, h_n, c_n = self._step(x, h0, c0, weights, xw)
        return y, (h_n, c_n)

    def backward(self, d_output, d_h_n=None, d_c_n=None):
        dx, dh0, dc0 = self._backward(d_output, d_h_n, d_c_n)
        return dx, (dh0, dc0)
