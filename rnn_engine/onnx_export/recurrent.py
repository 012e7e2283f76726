"""Recurrent layer stacks as chains of the standard ONNX RNN / LSTM / GRU operators (one per layer).

PyTorch (and so the engine) and ONNX stack the gate blocks of W_ih / W_hh / biases in different orders;
`GATE_ORDER_TORCH_TO_ONNX` is the one place that converts them. Each layer becomes one operator with
`direction="forward"` or `"bidirectional"`; its output Y (T, D, B, H) is turned into the engine's
(T, B, D*H) layout (Transpose + Reshape, or Squeeze when D = 1) before it feeds the next layer.

Padding: with `sequence_lens` onnxruntime matches the engine exactly (tests/export/test_recurrent_export.py
checks it): outputs at padded steps are zero, Y_h of the forward direction is the state at each sequence's
last real step, and the reverse direction starts at that last real step, as in PyTorch's packed sequences.
onnx.reference.ReferenceEvaluator (onnx 1.23) ignores `sequence_lens` and supports only Tanh/Affine RNN
activations, so padded batches and ReLU RNNs are checked against onnxruntime only.
"""

from __future__ import annotations

import json

import numpy as np
import onnx

from ..errors import InvalidInput
from ..nn.recurrent import RecurrentBase
from .builder import FLOAT, FORMAT_VERSION, INT32, GraphBuilder

# Gate blocks: PyTorch stacks LSTM as (i, f, g, o) and GRU as (r, z, n); ONNX wants LSTM (i, o, f, c) and
# GRU (z, r, h), where c is PyTorch's g (cell candidate) and h is PyTorch's n (new-state candidate).
# Entry j names the PyTorch block that goes to ONNX position j. GRU also needs linear_before_reset=1,
# which is PyTorch's n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
GATE_ORDER_TORCH_TO_ONNX = {"RNN_TANH": (0,), "RNN_RELU": (0,), "LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}
ONNX_OP = {"RNN_TANH": "RNN", "RNN_RELU": "RNN", "LSTM": "LSTM", "GRU": "GRU"}
CELL_NAME = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}


def check_layer(layer) -> RecurrentBase:
    if not isinstance(layer, RecurrentBase):
        raise InvalidInput(
            f"layer: expected an rnn_engine RNN, LSTM or GRU, got {type(layer).__name__}",
            field="layer",
        )
    return layer


def _reorder(w: np.ndarray, mode: str) -> np.ndarray:
    """Permute the gate blocks of a (G*H, ...) weight or (G*H,) bias from PyTorch's order to ONNX's."""
    blocks = np.split(np.asarray(w, dtype=np.float32), len(GATE_ORDER_TORCH_TO_ONNX[mode]), axis=0)
    return np.concatenate([blocks[j] for j in GATE_ORDER_TORCH_TO_ONNX[mode]], axis=0)


def onnx_weights(layer: RecurrentBase, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """W (D, G*H, I_k), R (D, G*H, H) and B (D, 2*G*H) = [Wb, Rb] of layer k in ONNX's gate order."""
    p, mode = layer.params, layer.mode
    sfx = layer._suffixes()
    W = np.stack([_reorder(p[f"weight_ih_l{k}{s}"], mode) for s in sfx])
    R = np.stack([_reorder(p[f"weight_hh_l{k}{s}"], mode) for s in sfx])
    if not layer.bias:
        return W, R, None
    B = np.stack([np.concatenate([_reorder(p[f"bias_ih_l{k}{s}"], mode),
                                  _reorder(p[f"bias_hh_l{k}{s}"], mode)])
                  for s in sfx])
    return W, R, B


def _layer_attrs(layer: RecurrentBase) -> dict:
    D = layer.num_directions
    attrs = {"hidden_size": layer.hidden_size, "direction": "bidirectional" if D == 2 else "forward"}
    if layer.mode == "RNN_RELU":
        attrs["activations"] = ["Relu"] * D
    elif layer.mode == "RNN_TANH":
        attrs["activations"] = ["Tanh"] * D
    elif layer.mode == "GRU":
        attrs["linear_before_reset"] = 1
    return attrs


def append_recurrent_stack(g: GraphBuilder, layer: RecurrentBase, x: str, *, h0: str | None = None,
                           c0: str | None = None, lengths: str | None = None,
                           prefix: str = "rnn") -> tuple[str, str, str | None]:
    """Append the nodes of every layer of `layer` to `g`, reading the time-major input `x` (T, B, I).

    Args:
        h0, c0: names of (L*D, B, H) initial states (c0 for LSTM only), or None for zeros.
        lengths: name of an int32 (B,) tensor of sequence lengths (ONNX `sequence_lens`), or None.
        prefix: start of every initializer and node name this stack adds.
    Returns:
        names of y (T, B, D*H), h_n (L*D, B, H) and c_n (L*D, B, H) (None unless LSTM).
    """
    check_layer(layer)
    if c0 is not None and layer.mode != "LSTM":
        raise InvalidInput(f"c0: only an LSTM has a cell state, this layer is {layer.mode}", field="c0")
    L, D = layer.num_layers, layer.num_directions
    lstm = layer.mode == "LSTM"
    h_parts, c_parts, inp = [], [], x
    for k in range(L):
        W, R, B = onnx_weights(layer, k)
        inputs = [inp, g.const(f"{prefix}_W_l{k}", W), g.const(f"{prefix}_R_l{k}", R),
                  g.const(f"{prefix}_B_l{k}", B) if B is not None else "", lengths or "",
                  _layer_slice(g, h0, k, D, L, f"{prefix}_h0_l{k}")]
        if lstm:
            inputs.append(_layer_slice(g, c0, k, D, L, f"{prefix}_c0_l{k}"))
        while inputs[-1] == "":
            inputs.pop()
        outs = g.node(ONNX_OP[layer.mode], inputs, 3 if lstm else 2, name=f"{prefix}_l{k}",
                      **_layer_attrs(layer))
        inp = _merge_directions(g, outs[0], D, f"{prefix}_l{k}")
        h_parts.append(outs[1])
        if lstm:
            c_parts.append(outs[2])
    h_n = h_parts[0] if L == 1 else g.node("Concat", h_parts, name=f"{prefix}_h_n", axis=0)[0]
    c_n = None
    if lstm:
        c_n = c_parts[0] if L == 1 else g.node("Concat", c_parts, name=f"{prefix}_c_n", axis=0)[0]
    return inp, h_n, c_n


def _layer_slice(g: GraphBuilder, state: str | None, k: int, D: int, L: int, name: str) -> str:
    """Rows k*D .. k*D+D of a (L*D, B, H) state: layer k's (D, B, H) initial state."""
    if state is None:
        return ""
    if L == 1:
        return state
    bounds = [g.ints(f"{name}_start", [k * D]), g.ints(f"{name}_end", [(k + 1) * D]),
              g.ints(f"{name}_axes", [0])]
    return g.node("Slice", [state, *bounds], name=name)[0]


def _merge_directions(g: GraphBuilder, y: str, D: int, name: str) -> str:
    """ONNX Y (T, D, B, H) -> engine layout (T, B, D*H), directions side by side as [forward, reverse]."""
    if D == 1:
        return g.node("Squeeze", [y, g.ints(f"{name}_dir_axis", [1])], name=f"{name}_squeeze")[0]
    t = g.node("Transpose", [y], name=f"{name}_transpose", perm=[0, 2, 1, 3])[0]  # (T, B, D, H)
    return g.node("Reshape", [t, g.ints(f"{name}_shape", [0, 0, -1])], name=f"{name}_reshape")[0]


def layer_config(layer: RecurrentBase) -> dict:
    """JSON-able description of a recurrent stack, as written into rnn_config metadata."""
    return {"cell": CELL_NAME[layer.mode], "input_size": layer.input_size, "hidden_size": layer.hidden_size,
            "num_layers": layer.num_layers, "bidirectional": layer.bidirectional, "bias": layer.bias,
            "batch_first": layer.batch_first}


def export_recurrent(layer: RecurrentBase, *, initial_state: bool = False,
                     lengths: bool = False) -> onnx.ModelProto:
    """A graph that runs `layer` (an engine RNN/LSTM/GRU in eval mode: no dropout) on a whole sequence.

    Inputs: x (T, B, I) ((B, T, I) if the layer is batch_first); with `initial_state`, h0 (L*D, B, H) and
    for an LSTM c0 (L*D, B, H); with `lengths`, sequence_lens int32 (B,) with 1 <= length <= T.
    Outputs: y (T, B, D*H) (batch-first if the layer is), h_n (L*D, B, H), and c_n for an LSTM.
    T and B are dynamic axes ("seq_len", "batch"). Weights are stored as float32.
    """
    check_layer(layer)
    for name, flag in (("initial_state", initial_state), ("lengths", lengths)):
        if not isinstance(flag, bool):
            raise InvalidInput(f"{name}: expected a bool, got {flag!r}", field=name)
    L, D, H, I = layer.num_layers, layer.num_directions, layer.hidden_size, layer.input_size
    lstm = layer.mode == "LSTM"
    g = GraphBuilder(f"{CELL_NAME[layer.mode]}_stack")
    seq_axes = ["batch", "seq_len"] if layer.batch_first else ["seq_len", "batch"]
    x = g.input("x", FLOAT, [*seq_axes, I], "input sequence")
    if layer.batch_first:
        x = g.node("Transpose", [x], name="x_time_major", perm=[1, 0, 2])[0]
    state_shape = [L * D, "batch", H]
    h0 = g.input("h0", FLOAT, state_shape, "initial hidden state") if initial_state else None
    c0 = g.input("c0", FLOAT, state_shape, "initial cell state") if initial_state and lstm else None
    seq = g.input("sequence_lens", INT32, ["batch"], "real steps per sequence") if lengths else None
    y, h_n, c_n = append_recurrent_stack(g, layer, x, h0=h0, c0=c0, lengths=seq)
    perm = {"perm": [1, 0, 2]} if layer.batch_first else {}
    g.node("Transpose" if layer.batch_first else "Identity", [y], outputs=["y"], name="output_y", **perm)
    g.node("Identity", [h_n], outputs=["h_n"], name="output_h_n")
    g.output("y", FLOAT, [*seq_axes, D * H], "output of the last layer, directions concatenated")
    g.output("h_n", FLOAT, state_shape, "final hidden state of every layer and direction")
    if lstm:
        g.node("Identity", [c_n], outputs=["c_n"], name="output_c_n")
        g.output("c_n", FLOAT, state_shape, "final cell state of every layer and direction")
    config = {"format_version": FORMAT_VERSION, "kind": "recurrent_layer", **layer_config(layer)}
    return g.build({"rnn_config": json.dumps(config)}, doc=f"engine {layer!r} exported by rnn_engine")
