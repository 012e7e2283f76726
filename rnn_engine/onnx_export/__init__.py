"""ONNX export of every model kind (the only engine package that imports onnx).

`export_model(model, graph)` returns a checked `onnx.ModelProto` (opset `OPSET` = 21, float32 even for
float64 models, dynamic "batch" and "seq_len" axes) built from the standard RNN / LSTM / GRU operators,
never unrolled loops; `save_onnx(proto, path)` writes it atomically; `export_recurrent(layer)` exports a
bare layer stack.

Graphs per model kind (inputs -> outputs; B batch, T steps, L*D layers x directions, H hidden size):

| task | graph | inputs | outputs |
| --- | --- | --- | --- |
| language_model | "full" | tokens (B, T), lengths (B,) int64 | logits, probabilities (B, T, V), h_n[, c_n] |
| language_model | "step" | token (B,) int64, h[, c] (L, B, H) | logits, probabilities (B, V), h_n[, c_n] |
| classification | "full" | tokens, lengths | logits, probabilities (B, C) |
| tagging | "full" | tokens, lengths | logits, probabilities (B, T, C) |
| forecasting | "full" (one step) | window (B, K, F) raw values | prediction (B, 1) raw value |
| one_to_many | "full" (teacher forced) | label, tokens, lengths | logits, probabilities (B, T, V) |
| one_to_many | "encoder" | label (B,) int64 | h_n[, c_n]: the decoder's initial state |
| one_to_many | "decoder_step" | token, h[, c] | logits, probabilities (B, V), h_n[, c_n] |
| seq2seq | "full" (teacher forced) | source_tokens, source_lengths, tokens, lengths | logits, probabilities |
| seq2seq | "encoder" | tokens, lengths (the source) | h_n[, c_n]: the decoder's initial state |
| seq2seq | "decoder_step" | token, h[, c] | logits, probabilities (B, V), h_n[, c_n] |

Every kind has "full", the default (and `graphs_for(task)[0]`); decoder tokens of a "full" seq2seq or
one-to-many graph start with <bos>, and so do a language model's "full" tokens: the caller feeds
rnn_config["prompt_prefix"] ([<bos>]) before the text; step i + 1 is Predict's output for text token i.
Logits at padded steps (beyond `lengths`) are the head's bias: the recurrent output there is zero.

c / c_n exist for LSTM models only. Generation: start from zero states (language model) or the encoder's
output, feed `<bos>` (id 2; a language model reads it before the prompt), then each chosen token, until
`<eos>` (id 3). States out of one call go in as h, c of the next. Every file carries metadata_props
(rnn_config, vocab or normalisation, labels; see metadata.py), enough to use it without this project.

Semantics that differ from a naive reading of ONNX: with `sequence_lens` onnxruntime gives exactly the
engine's (PyTorch's packed) results, zeros at padded steps and the reverse direction starting at each
sequence's last real step (tested); ReferenceEvaluator ignores `sequence_lens` (see recurrent.py).
"""

from __future__ import annotations

import onnx

from ..errors import InvalidInput
from .builder import OPSET
from .models import CONVERTERS
from .recurrent import GATE_ORDER_TORCH_TO_ONNX, export_recurrent
from .save import save_onnx

__all__ = ["OPSET", "GATE_ORDER_TORCH_TO_ONNX", "export_model", "export_recurrent", "graphs_for", "save_onnx"]


def graphs_for(task: str) -> list[str]:
    """The graph names `export_model` accepts for a model of `task`."""
    if task not in CONVERTERS:
        raise InvalidInput(f"task: expected one of {sorted(CONVERTERS)}, got {task!r}", field="task")
    return list(CONVERTERS[task])


def export_model(model, graph: str = "full") -> onnx.ModelProto:
    """Export one graph of `model` (an rnn_engine.model.Model) as a checked ONNX model (see the table above).

    Raises InvalidInput when `model` is not a Model or `graph` is not one of its kind's graphs.
    """
    from ..model import Model

    if not isinstance(model, Model):
        raise InvalidInput(f"model: expected an rnn_engine Model, got {type(model).__name__}", field="model")
    available = graphs_for(model.task)
    if graph not in available:
        raise InvalidInput(f"graph: a {model.task} model exports {available}, got {graph!r}", field="graph")
    return CONVERTERS[model.task][graph](model)
