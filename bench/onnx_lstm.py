"""A tiny ONNX graph of stacked standard LSTM operators from PyTorch-named weights, for benchmarks only.

The product's exporter lives in rnn_engine/onnx_export.py; this builder exists so that the generation-step
benchmark can time onnxruntime on exactly the computation the engine does, without depending on it.
"""

from __future__ import annotations

import numpy as np

# PyTorch stores LSTM gate blocks as (i, f, g, o); ONNX expects (i, o, f, c) with c the cell candidate (= g).
TORCH_TO_ONNX_LSTM = (0, 3, 1, 2)


def _reorder(w: np.ndarray, H: int) -> np.ndarray:
    """Rows (4H, ...) in PyTorch gate order -> ONNX gate order."""
    return np.concatenate([w[k * H : (k + 1) * H] for k in TORCH_TO_ONNX_LSTM])


def stacked_lstm_model(params: dict[str, np.ndarray], num_layers: int, input_size: int, hidden_size: int):
    """ONNX model: inputs x (T, B, I), h0 and c0 (L, B, H); outputs y (T, B, H), h_n and c_n (L, B, H).

    `params` holds unidirectional PyTorch-named weights with biases (`weight_ih_l0`, `bias_hh_l1`, ...).
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    H, L = hidden_size, num_layers
    f32 = TensorProto.FLOAT
    inputs = [
        helper.make_tensor_value_info("x", f32, ["T", "B", input_size]),
        helper.make_tensor_value_info("h0", f32, [L, "B", H]),
        helper.make_tensor_value_info("c0", f32, [L, "B", H]),
    ]
    outputs = [
        helper.make_tensor_value_info("y", f32, ["T", "B", H]),
        helper.make_tensor_value_info("h_n", f32, [L, "B", H]),
        helper.make_tensor_value_info("c_n", f32, [L, "B", H]),
    ]
    inits, nodes, layer_in, h_outs, c_outs = [], [], "x", [], []
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    for k in range(L):
        W = _reorder(params[f"weight_ih_l{k}"], H)[None].astype(np.float32)  # (1, 4H, I_k)
        R = _reorder(params[f"weight_hh_l{k}"], H)[None].astype(np.float32)  # (1, 4H, H)
        Bias = np.concatenate([_reorder(params[f"bias_ih_l{k}"], H), _reorder(params[f"bias_hh_l{k}"], H)])
        idx = np.array([k], dtype=np.int64)  # Gather with a 1-element index keeps the axis: (1, B, H)
        Bias = Bias[None].astype(np.float32)  # (1, 8H): W biases then R biases
        for name, arr in ((f"W{k}", W), (f"R{k}", R), (f"B{k}", Bias), (f"idx{k}", idx)):
            inits.append(numpy_helper.from_array(arr, name))
        nodes += [
            helper.make_node("Gather", ["h0", f"idx{k}"], [f"h0_{k}"], axis=0),
            helper.make_node("Gather", ["c0", f"idx{k}"], [f"c0_{k}"], axis=0),
            helper.make_node(
                "LSTM", [layer_in, f"W{k}", f"R{k}", f"B{k}", "", f"h0_{k}", f"c0_{k}"],
                [f"Y{k}", f"h_{k}", f"c_{k}"], hidden_size=H,
            ),
            helper.make_node("Squeeze", [f"Y{k}", "axis1"], [f"y{k}"]),  # (T, 1, B, H) -> (T, B, H)
        ]
        layer_in = f"y{k}"
        h_outs.append(f"h_{k}")
        c_outs.append(f"c_{k}")
    nodes += [
        helper.make_node("Identity", [layer_in], ["y"]),
        helper.make_node("Concat", h_outs, ["h_n"], axis=0),
        helper.make_node("Concat", c_outs, ["c_n"], axis=0),
    ]
    graph = helper.make_graph(nodes, "stacked_lstm", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    checker.check_model(model)
    return model


def ort_session(model, threads: int):
    """An onnxruntime CPU session limited to `threads` intra-op threads and one inter-op thread."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
