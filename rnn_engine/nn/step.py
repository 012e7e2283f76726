"""The one-step path of the recurrent layers (generation, serving): `StepWeights`, the parameters laid out
once for repeated steps, and `StepPath`, the `step` / `step_weights` methods `RecurrentBase` mixes in.
Same arithmetic as `forward` on one step of B rows; no cache, unidirectional layers only."""

from __future__ import annotations

from ..backend import xp
from ..errors import InvalidInput
from ..validate import as_float_array, check_shape
from . import kernels


class StepWeights:
    """A layer's parameters copied for repeated `step` calls (`RecurrentBase.step_weights()`).

    `layers[k]` = (W_ih^T (I_k, G), W_hh^T (H, G), bias (G,) or None, b_hn, None): contiguous, gate scale
    folded in, as `_forward_weights` lays them out for a long forward pass.
    """

    def __init__(self, layer, layers: tuple) -> None:
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
                kernels.gru_cell(a, hw, b_hn, h0[k], tc, h_n[k])
            else:
                a += hw
                if mode == "LSTM":
                    kernels.lstm_cell(a, c0[k], c_n[k], tc, h_n[k])
                else:
                    kernels.rnn_cell(a, mode == "RNN_RELU")
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
            raise InvalidInput(
                f"embedding: expected shape (V, {Wih_t.shape[0]}), got {emb.shape}", field="embedding"
            )
        table = emb @ Wih_t
        if bias is not None:
            table += bias
        return table


class StepPath:
    """`RecurrentBase`'s one-step inference methods (see `RecurrentBase` for the attributes they read)."""

    def step_weights(self) -> StepWeights:
        """Frozen copies of the parameters laid out for repeated `step` calls (serving, generation).

        Each layer's W_ih^T and W_hh^T contiguous with the gate scale folded in, biases folded, as a long
        forward pass uses them: a step's products run 1.3-1.6x faster than on the parameters' transposed views
        with OpenBLAS at 12-64 rows. Copies, so they do not follow later changes of the parameters (optimizer
        steps, load_state_dict): build new ones after those.
        """
        if self.bidirectional:
            raise InvalidInput(
                "step_weights: expected a unidirectional layer, got a bidirectional one", field="step_weights"
            )
        if self._frozen is not None:  # a frozen layer's copies serve its steps too
            return StepWeights(self, tuple(self._frozen[(k, "")] for k in range(self.num_layers)))
        return StepWeights(self, tuple(self._copies(k, "") for k in range(self.num_layers)))

    def _step(self, x, h0, c0, weights=None, xw=None):
        """Generation fast path: x (B, I), states (L, B, H) -> (y (B, H), h_n, c_n); caches nothing.

        Same arithmetic as `forward` on one step of B rows. With `weights` (`step_weights()`) the products
        use its contiguous copies; without, the parameters' transposed views (at batch 1 the products are
        matrix-vector products bound by reading the weights once, and nothing is copied per call).
        `xw` (B, G) replaces layer 0's input projection (scaled, biased: `StepWeights.input_table` rows).
        """
        if self.bidirectional:
            raise InvalidInput(
                "step: expected a unidirectional layer, got a bidirectional one (use forward)", field="step"
            )
        if weights is not None and (not isinstance(weights, StepWeights) or weights.layer is not self):
            other = " of another layer" if isinstance(weights, StepWeights) else ""
            raise InvalidInput("weights: expected this layer's step_weights(), got "
                               f"{type(weights).__name__}{other}", field="weights")
        G = self.gate_count * self.hidden_size
        if xw is not None:
            if weights is None:
                raise InvalidInput(
                    "xw: a precomputed input projection needs weights=step_weights()", field="xw"
                )
            inp = as_float_array("xw", xw, self.dtype, 2)
            if inp.shape[1] != G or inp.shape[0] == 0:
                raise InvalidInput(f"xw: expected shape (B >= 1, {G}), got {inp.shape}", field="xw")
        else:
            inp = as_float_array("x", x, self.dtype, 2)
            if inp.shape[1] != self.input_size or inp.shape[0] == 0:
                raise InvalidInput(
                    f"x: expected shape (B >= 1, {self.input_size}), got {inp.shape}", field="x"
                )
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
                kernels.gru_cell(a, hw, b_hn, h0[k], xp.empty((B, H), self.dtype), h_n[k])
            else:
                a += hw
                if lstm:
                    kernels.lstm_cell(a, c0[k], c_n[k], xp.empty((B, H), self.dtype), h_n[k])
                else:
                    h_n[k] = kernels.rnn_cell(a, self.mode == "RNN_RELU")
            inp = h_n[k]
        return h_n[-1].copy(), h_n, c_n

    def _step_state(self, name, s, B):
        shape = (self.num_layers, B, self.hidden_size)
        if s is None:
            return xp.zeros(shape, dtype=self.dtype)
        s = as_float_array(name, s, self.dtype, 3)
        check_shape(name, s, shape)
        return s

    def step(self, x, h=None, weights=None, xw=None):
        """One step for generation: x (B, I), h (L, B, H) or None -> (y (B, H), h_n (L, B, H)); no cache.

        `weights`: `step_weights()` to reuse across calls; `xw`: layer 0's projected input instead of x.
        """
        y, h_n, _ = self._step(x, h, None, weights, xw)
        return y, h_n
