"""Exported recurrent stacks compute what the engine computes: onnxruntime on a full grid, ReferenceEvaluator
on a small one, plus the graph's structure (standard operators, gate order, dynamic axes, checker)."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from rnn_engine.backend import no_grad
from rnn_engine.errors import InvalidInput
from rnn_engine.onnx_export import export_recurrent
from rnn_engine.onnx_export.builder import OPSET
from rnn_engine.onnx_export.recurrent import GATE_ORDER_TORCH_TO_ONNX, onnx_weights
from tests.engine.recurrent_cases import KINDS, make_engine, run_engine

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is the runtime the export targets")

I, H = 5, 6
TOL = 1e-5


def session(model: onnx.ModelProto):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def case(kind, layers, bidirectional, batch, with_lengths, steps=7, seed=0, **kw):
    """An eval-mode float32 layer, inputs and feeds for it, and the engine's outputs."""
    rng = np.random.default_rng(seed)
    layer = make_engine(kind, I, H, num_layers=layers, bidirectional=bidirectional, seed=rng, **kw).eval()
    D = layer.num_directions
    x = rng.standard_normal((steps, batch, I)).astype(np.float32)
    h0 = rng.standard_normal((layers * D, batch, H)).astype(np.float32)
    c0 = rng.standard_normal((layers * D, batch, H)).astype(np.float32) if kind == "lstm" else None
    lengths = rng.integers(1, steps + 1, size=batch) if with_lengths else None
    if with_lengths:
        lengths[0] = steps  # the longest sequence fills the padded length, as in a real batch
    with no_grad():
        want = run_engine(layer, kind, x, h0, c0, lengths)
    feeds = {"x": x, "h0": h0}
    if c0 is not None:
        feeds["c0"] = c0
    if with_lengths:
        feeds["sequence_lens"] = lengths.astype(np.int32)
    return layer, feeds, want


def assert_matches(got: list[np.ndarray], want: dict, kind: str) -> None:
    np.testing.assert_allclose(got[0], want["output"], atol=TOL, rtol=0)
    np.testing.assert_allclose(got[1], want["h_n"], atol=TOL, rtol=0)
    if kind == "lstm":
        np.testing.assert_allclose(got[2], want["c_n"], atol=TOL, rtol=0)


GRID = list(itertools.product(KINDS, (1, 3), (False, True), (1, 4), (False, True)))


@pytest.mark.parametrize("kind,layers,bidirectional,batch,with_lengths", GRID)
def test_onnxruntime_equals_engine(kind, layers, bidirectional, batch, with_lengths):
    layer, feeds, want = case(kind, layers, bidirectional, batch, with_lengths)
    model = export_recurrent(layer, initial_state=True, lengths=with_lengths)
    assert_matches(session(model).run(None, feeds), want, kind)


# ReferenceEvaluator ignores sequence_lens and knows only Tanh/Affine RNN activations (onnx 1.23), so it runs
# the unpadded tanh/LSTM/GRU cases, kept small because it is slow.
@pytest.mark.parametrize("kind,layers,bidirectional,batch",
                         list(itertools.product(("tanh", "lstm", "gru"), (1, 3), (False, True), (1, 3))))
def test_reference_evaluator_equals_engine(kind, layers, bidirectional, batch):
    layer, feeds, want = case(kind, layers, bidirectional, batch, False, steps=4)
    model = export_recurrent(layer, initial_state=True)
    assert_matches(ReferenceEvaluator(model).run(None, feeds), want, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_padded_steps_output_zeros_and_reverse_starts_at_each_last_element(kind):
    layer, feeds, want = case(kind, 2, True, 3, True, steps=6, seed=3)
    feeds["sequence_lens"] = np.array([6, 2, 4], dtype=np.int32)
    lengths = feeds["sequence_lens"].astype(np.int64)
    with no_grad():
        want = run_engine(layer, kind, feeds["x"], feeds["h0"], feeds.get("c0"), lengths)
    got = session(export_recurrent(layer, initial_state=True, lengths=True)).run(None, feeds)
    assert np.all(got[0][2:, 1] == 0) and np.all(got[0][4:, 2] == 0)
    assert_matches(got, want, kind)
    # the reverse half of h_n is the reverse direction's state after reading back from the last real step
    # to step 0, which is its output at step 0 (not the state after the padded tail)
    np.testing.assert_allclose(got[1][-1], got[0][0, :, H:], atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_without_initial_state_the_states_start_at_zero(kind):
    layer, feeds, _ = case(kind, 2, False, 2, False)
    with no_grad():
        want = run_engine(layer, kind, feeds["x"])
    got = session(export_recurrent(layer)).run(None, {"x": feeds["x"]})
    assert_matches(got, want, kind)


@pytest.mark.parametrize("kind", ("lstm", "gru", "tanh"))
def test_batch_first_and_bias_free_layers(kind):
    rng = np.random.default_rng(5)
    layer = make_engine(kind, I, H, num_layers=2, bidirectional=True, batch_first=True, bias=False,
                        seed=rng).eval()
    x = rng.standard_normal((3, 5, I)).astype(np.float32)  # (B, T, I)
    with no_grad():
        want = run_engine(layer, kind, x)
    got = session(export_recurrent(layer)).run(None, {"x": x})
    assert got[0].shape == (3, 5, 2 * H)
    assert_matches(got, want, kind)


def test_one_model_serves_any_batch_and_length():
    layer, _, _ = case("lstm", 2, True, 1, False)
    sess = session(export_recurrent(layer))
    rng = np.random.default_rng(1)
    for T, B in ((1, 1), (9, 2), (3, 8)):
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        with no_grad():
            want = run_engine(layer, "lstm", x)
        assert_matches(sess.run(None, {"x": x}), want, "lstm")


@pytest.mark.parametrize("kind,op", [("tanh", "RNN"), ("relu", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_graph_uses_one_standard_operator_per_layer(kind, op):
    layer = make_engine(kind, I, H, num_layers=3, bidirectional=True, seed=0)
    model = export_recurrent(layer, initial_state=True, lengths=True)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == OPSET
    ops = [n.op_type for n in model.graph.node]
    assert ops.count(op) == 3 and "Loop" not in ops and "Scan" not in ops
    rnn_nodes = [n for n in model.graph.node if n.op_type == op]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rnn_nodes[0].attribute}
    assert attrs["direction"] == b"bidirectional" and attrs["hidden_size"] == H
    if kind == "relu":
        assert attrs["activations"] == [b"Relu", b"Relu"]
    if kind == "gru":
        assert attrs["linear_before_reset"] == 1
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    y = next(v for v in inferred.graph.output if v.name == "y")
    dims = [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim]
    assert dims == ["seq_len", "batch", 2 * H]


def test_gate_blocks_follow_onnx_order():
    layer = make_engine("lstm", I, H, seed=0)
    W, R, B = onnx_weights(layer, 0)
    torch_blocks = np.split(layer.params["weight_ih_l0"], 4)  # i, f, g, o
    onnx_blocks = np.split(W[0], 4)  # i, o, f, c
    for onnx_pos, torch_pos in enumerate((0, 3, 1, 2)):
        np.testing.assert_array_equal(onnx_blocks[onnx_pos], torch_blocks[torch_pos])
    assert GATE_ORDER_TORCH_TO_ONNX["GRU"] == (1, 0, 2)  # r, z, n -> z, r, h
    gru = make_engine("gru", I, H, seed=0)
    z_onnx, z_torch = np.split(onnx_weights(gru, 0)[1][0], 3)[0], np.split(gru.params["weight_hh_l0"], 3)[1]
    np.testing.assert_array_equal(z_onnx, z_torch)


def test_rejects_what_is_not_a_recurrent_layer():
    with pytest.raises(InvalidInput, match="layer: expected an rnn_engine RNN, LSTM or GRU, got dict"):
        export_recurrent({})
    with pytest.raises(InvalidInput, match="lengths: expected a bool"):
        export_recurrent(make_engine("gru", I, H), lengths="yes")
