"""Graph pieces shared by the model converters: token inputs and embedding, output heads, state plumbing.

Shapes: B batch, T steps, E embedding size, L layers, D directions, H hidden size, V/C output size.
Graph inputs and outputs are batch-first as the engine's models are; the recurrent operators in between run
time-major (T, B, .), so there is one Transpose on the way in and one on the way out.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from ..nn.modules import Embedding, Linear
from ..nn.recurrent import RecurrentBase
from .builder import FLOAT, INT32, INT64, GraphBuilder


def token_inputs(g: GraphBuilder, embedding: Embedding, prefix: str = "",
                 docs: tuple[str, str] = ("token ids, right-padded with <pad> (0)",
                                          "real tokens per sequence, 1..seq_len")) -> tuple[str, str]:
    """Inputs `{prefix}tokens` (B, T) int64 and `{prefix}lengths` (B,) int64 (doc strings `docs`); returns
    embedded (T, B, E) and the lengths as int32 (ONNX `sequence_lens`)."""
    tokens = g.input(f"{prefix}tokens", INT64, ["batch", "seq_len"], docs[0])
    lengths = g.input(f"{prefix}lengths", INT64, ["batch"], docs[1])
    time_major = g.node("Transpose", [tokens], name=f"{prefix}tokens_time_major", perm=[1, 0])[0]  # (T, B)
    x = embed(g, embedding, time_major, f"{prefix}embedding")  # (T, B, E)
    seq = g.node("Cast", [lengths], name=f"{prefix}lengths_int32", to=INT32)[0]
    return x, seq


def embed(g: GraphBuilder, embedding: Embedding, ids: str, name: str) -> str:
    """Gather rows of the embedding table: ids (...) -> (..., E)."""
    table = g.const(f"{name}_weight", embedding.params["weight"])
    return g.node("Gather", [table, ids], name=name, axis=0)[0]


def head(g: GraphBuilder, linear: Linear, x: str, out: str, name: str = "head") -> str:
    """x (..., in) -> `out` (..., out_features) for any rank: MatMul by W^T, then Add the bias."""
    w_t = g.const(f"{name}_weight_t", np.ascontiguousarray(linear.params["weight"].T))
    if "bias" not in linear.params:
        return g.node("MatMul", [x, w_t], name=f"{name}_matmul", outputs=[out])[0]
    y = g.node("MatMul", [x, w_t], name=f"{name}_matmul")[0]
    return g.node("Add", [y, g.const(f"{name}_bias", linear.params["bias"])], name=f"{name}_add",
                  outputs=[out])[0]


def gemm_head(g: GraphBuilder, linear: Linear, x: str, out: str, name: str = "head") -> str:
    """x (B, in) -> `out` (B, out_features) with one Gemm (y = x W^T + b)."""
    inputs = [x, g.const(f"{name}_weight", linear.params["weight"])]
    if "bias" in linear.params:
        inputs.append(g.const(f"{name}_bias", linear.params["bias"]))
    return g.node("Gemm", inputs, name=name, outputs=[out], transB=1)[0]


def probabilities(g: GraphBuilder, logits: str, out: str = "probabilities") -> str:
    return g.node("Softmax", [logits], name="softmax", outputs=[out], axis=-1)[0]


def batch_first(g: GraphBuilder, y: str, name: str) -> str:
    """(T, B, F) -> (B, T, F)."""
    return g.node("Transpose", [y], name=name, perm=[1, 0, 2])[0]


def last_layer_state(g: GraphBuilder, rnn: RecurrentBase, h_n: str) -> str:
    """The last layer's final states of h_n (L*D, B, H) side by side: (B, D*H) = [forward, reverse]."""
    L, D = rnn.num_layers, rnn.num_directions
    h = h_n
    if L > 1:
        bounds = [g.ints("last_layer_start", [(L - 1) * D]), g.ints("last_layer_end", [L * D]),
                  g.ints("last_layer_axes", [0])]
        h = g.node("Slice", [h_n, *bounds], name="last_layer")[0]
    h = g.node("Transpose", [h], name="last_state_batch_first", perm=[1, 0, 2])[0]  # (B, D, H)
    return g.node("Reshape", [h, g.ints("last_state_shape", [0, -1])], name="last_state_flat")[0]


def state_inputs(g: GraphBuilder, rnn: RecurrentBase) -> tuple[str, str | None]:
    """Inputs h (and c for an LSTM), each (L, B, H): the state a step graph continues from."""
    shape = [rnn.num_layers * rnn.num_directions, "batch", rnn.hidden_size]
    h = g.input("h", FLOAT, shape, "hidden state of every layer (zeros to start)")
    if rnn.mode != "LSTM":
        return h, None
    return h, g.input("c", FLOAT, shape, "cell state of every layer (zeros to start)")


def state_outputs(g: GraphBuilder, rnn: RecurrentBase, h_n: str, c_n: str | None) -> None:
    """Outputs h_n (and c_n), each (L*D, B, H): the state after the last real step of every sequence."""
    shape = [rnn.num_layers * rnn.num_directions, "batch", rnn.hidden_size]
    g.node("Identity", [h_n], name="output_h_n", outputs=["h_n"])
    g.output("h_n", FLOAT, shape, "hidden state after the last real step")
    if c_n is not None:
        g.node("Identity", [c_n], name="output_c_n", outputs=["c_n"])
        g.output("c_n", FLOAT, shape, "cell state after the last real step")


def zeros_like(g: GraphBuilder, x: str, name: str) -> str:
    """A float32 tensor of zeros with the (dynamic) shape of x."""
    shape = g.node("Shape", [x], name=f"{name}_shape")[0]
    zero = helper.make_tensor(f"{name}_value", TensorProto.FLOAT, [1], [0.0])
    return g.node("ConstantOfShape", [shape], name=name, value=zero)[0]


def state_doc(rnn: RecurrentBase) -> dict[str, str]:
    shape = f"({rnn.num_layers * rnn.num_directions}, batch, {rnn.hidden_size})"
    doc = {"h_n": f"float32 {shape}"}
    if rnn.mode == "LSTM":
        doc["c_n"] = f"float32 {shape}"
    return doc
