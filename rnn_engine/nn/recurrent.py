"""Multi-layer, optionally bidirectional RNN / LSTM / GRU layers shaped like torch.nn.RNN / LSTM / GRU.

Parameters are named and laid out exactly as PyTorch's (`weight_ih_l{k}[_reverse]`, gate order i,f,g,o for
LSTM and r,z,n for GRU), so a PyTorch state_dict converted to NumPy loads unchanged and gives the same
outputs. Backpropagation through time is written by hand in `kernels/`.

This module holds the parameters, validation, the forward/backward dispatch and freezing; the paths
themselves are mixed in: `rows.RowPath` (row layout), `lstm_columns.LSTMColumns` (the LSTM's column layout),
`step.StepPath` (one step, generation).

Over 350 lines (~380) on purpose: `COPY_MIN_ROWS` and every rule that reads it (`_forward_weights`, the
layout predicates, `freeze()`'s copies) stay in one module, so a test or a caller patching the threshold
changes every path at once; RNN, GRU and LSTM (80 lines) are the public faces of the same base.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import grad_enabled, xp
from ..errors import InvalidInput
from ..validate import (
    as_float_array,
    as_lengths,
    check_positive_int,
    check_probability,
    check_shape,
)
from . import kernels
from .init import RECURRENT_INITS, recurrent_matrix, uniform, xavier_uniform
from .kernels import columns
from .kernels.common import _scaled_transpose
from .lstm_columns import LSTMColumns
from .modules import Module
from .rows import RowPath
from .step import StepPath, StepWeights  # noqa: F401 - StepWeights re-exported (type of step_weights())

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
COPY_MIN_ROWS = 64  # T*B from which the forward copies its weights contiguously (see _forward_weights)



class RecurrentBase(Module, RowPath, LSTMColumns, StepPath):
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
                raise InvalidInput(f"{name}: expected a bool, got {flag!r}", field=name)
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout = check_probability("dropout", dropout)
        if init not in RECURRENT_INITS:
            raise InvalidInput(f"init: expected one of {RECURRENT_INITS}, got {init!r}", field="init")
        super().__init__(dtype, seed)  # dtype, rng, training, params, grads, _cache
        self.gate_count = GATES[self.mode]
        self.num_directions = 2 if bidirectional else 1
        self._frozen: dict[tuple[int, str], tuple] | None = None  # see freeze()
        # (G,) sigmoid halving folded into the weights; depends on the mode only, never on parameter values
        self._gate_scale = kernels.gate_scale(self.mode, self.hidden_size, self.dtype)
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
            raise InvalidInput(f"init: expected one of {RECURRENT_INITS}, got {init!r}", field="init")
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

    def _parameters_changed(self) -> None:
        """After `load_state_dict`: a frozen layer copies the new parameters for inference again."""
        if self._frozen is not None:
            self.freeze()

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
                f"x: expected {self.input_size} features in the last axis, got {I} (shape {x.shape})",
                field="x",
            )
        if T == 0 or B == 0:
            raise InvalidInput(
                f"x: expected at least one step and one sequence, got shape {x.shape}", field="x"
            )
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
        return self._run_rows(x, h0, c0, mask, keep)

    def _columns_apply(self, keep, T, B):
        """Inference of GRU with contiguous weight copies and B >= columns.MIN_BATCH: column layout (the LSTM
        takes `_lstm_columns_apply`'s path for training and inference alike)."""
        return not keep and self.mode == "GRU" and B >= columns.MIN_BATCH and T * B >= COPY_MIN_ROWS

    def _lstm_columns_apply(self, T, B):
        """LSTM calls with B >= columns.MIN_BATCH and T*B >= COPY_MIN_ROWS, training or not: column layout
        (`kernels.lstm_forward_columns` / `lstm_backward_columns`); smaller ones keep the row layout."""
        return self.mode == "LSTM" and B >= columns.MIN_BATCH and T * B >= COPY_MIN_ROWS

    def forward(self, x, h0=None, lengths=None):
        """Run the whole sequence; returns (output, h_n). See the class docstring for shapes."""
        output, h_n, _ = self._run(x, h0, None, lengths)
        return output, h_n

    # -------------------------------------------------------------------------------- freezing (inference)
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

    def _copies(self, k, s) -> tuple:
        """`_forward_weights` of a long forward pass as new arrays (b_hn too: it is a view of b_hh there)."""
        Wih_t, Whh_t, bias, b_hn, scale = self._forward_weights(k, s, COPY_MIN_ROWS)
        return Wih_t, Whh_t, bias, xp.array(b_hn, dtype=self.dtype), scale

    # --------------------------------------------------------------------------------------------- backward
    def _backward(self, d_output, d_h_n, d_c_n):
        if self._cache is None:
            raise InvalidInput(
                "backward: no forward pass to differentiate (call forward first, outside no_grad())",
                field="backward",
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
        if len(self._cache) == 4:  # a column-layout LSTM forward
            dx, dh0, dc0 = self._backward_lstm_columns(d_out, d_h, d_c)
        else:
            dx, dh0, dc0 = self._backward_rows(d_out, d_h, d_c)
        return (dx.transpose(1, 0, 2) if batch_first else dx), dh0, dc0

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
            raise InvalidInput(
                f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}", field="nonlinearity"
            )
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
            raise InvalidInput(
                f"forget_bias: expected a finite number or None, got {forget_bias!r}", field="forget_bias"
            )
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
            raise InvalidInput(
                "hx: expected a pair (h0, c0) of (num_layers*D, B, H) arrays, or None", field="hx"
            )
        output, h_n, c_n = self._run(x, h0, c0, lengths)
        return output, (h_n, c_n)

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
