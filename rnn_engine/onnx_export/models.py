"""One converter per model kind and graph: `CONVERTERS[task][graph](model) -> onnx.ModelProto`.

Each converter declares its inputs and outputs, appends the embedding, the recurrent stack (recurrent.py)
and the head (parts.py), and builds the model with its metadata (metadata.py). Names of inputs and outputs
are the API of the exported files, documented in the package docstring.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from .builder import FLOAT, INT64, GraphBuilder
from .metadata import model_metadata, normalisation
from .parts import (
    batch_first,
    embed,
    gemm_head,
    head,
    last_layer_state,
    probabilities,
    state_doc,
    state_inputs,
    state_outputs,
    token_inputs,
    zeros_like,
)
from .recurrent import append_recurrent_stack

TOKENS_DOC = {"tokens": "int64 (batch, seq_len), right-padded with <pad>=0", "lengths": "int64 (batch,)"}
# A language model reads <bos> before the text (rnn_config "prompt_prefix"); its full graph does not add it.
LM_TOKENS_DOC = {
    "tokens": "int64 (batch, seq_len): <bos> (id 2, rnn_config prompt_prefix) first, then the text's token "
    "ids, right-padded with <pad>=0",
    "lengths": "int64 (batch,): tokens per sequence counting the <bos>",
}
LM_STEPS_DOC = ("at step t the scores of the token that follows tokens[t]: step 0 (after <bos>) scores the "
                "text's first token, step i+1 the token after the text's i-th (what Predict returns for it)")


def _finish(g: GraphBuilder, model, graph: str, inputs: dict[str, str], outputs: dict[str, str]):
    doc = f"rnn-service {model.task} ({model.config.cell}), graph {graph!r}"
    return g.build(model_metadata(model, graph, inputs, outputs), doc=doc)


def _per_step_logits(model, graph: str, with_states: bool) -> onnx.ModelProto:
    """Language model (full) and tagger: tokens, lengths -> logits and probabilities at every step."""
    net = model.net
    V = net.head.out_features
    g = GraphBuilder(f"{model.task}_{graph}")
    lm = model.task == "language_model"
    docs = LM_TOKENS_DOC if lm else TOKENS_DOC
    if lm:
        x, seq = token_inputs(g, net.embedding, docs=(docs["tokens"], docs["lengths"]))
    else:
        x, seq = token_inputs(g, net.embedding)
    y, h_n, c_n = append_recurrent_stack(g, net.rnn, x, lengths=seq)
    logits = head(g, net.head, batch_first(g, y, "rnn_batch_first"), "logits")
    probabilities(g, logits)
    steps = LM_STEPS_DOC if lm else "scores at every step"
    g.output("logits", FLOAT, ["batch", "seq_len", V], f"{steps} (padded steps: head bias)")
    g.output("probabilities", FLOAT, ["batch", "seq_len", V], "softmax of logits")
    outputs = {"logits": f"float32 (batch, seq_len, {V})", "probabilities": f"float32 (batch, seq_len, {V})"}
    if lm:
        outputs = {k: f"{v}: {LM_STEPS_DOC}" for k, v in outputs.items()}
    if with_states:
        state_outputs(g, net.rnn, h_n, c_n)
        outputs.update(state_doc(net.rnn))
    return _finish(g, model, graph, dict(docs), outputs)


def language_model_full(model) -> onnx.ModelProto:
    return _per_step_logits(model, "full", with_states=True)


def tagger_full(model) -> onnx.ModelProto:
    return _per_step_logits(model, "full", with_states=False)


def classifier_full(model) -> onnx.ModelProto:
    """tokens, lengths -> logits and probabilities of each class, read at each sequence's last real step."""
    net = model.net
    C = net.head.out_features
    g = GraphBuilder("classification_full")
    x, seq = token_inputs(g, net.embedding)
    _, h_n, _ = append_recurrent_stack(g, net.rnn, x, lengths=seq)
    logits = gemm_head(g, net.head, last_layer_state(g, net.rnn, h_n), "logits")
    probabilities(g, logits)
    g.output("logits", FLOAT, ["batch", C], "class scores")
    g.output("probabilities", FLOAT, ["batch", C], "softmax of logits; class names in metadata 'labels'")
    outputs = {"logits": f"float32 (batch, {C})", "probabilities": f"float32 (batch, {C})"}
    return _finish(g, model, "full", dict(TOKENS_DOC), outputs)


def _step(model, graph: str, embedding, rnn, linear) -> onnx.ModelProto:
    """One token and the state in, the next token's logits and the new state out."""
    V = linear.out_features
    g = GraphBuilder(f"{model.task}_{graph}")
    token = g.input("token", INT64, ["batch"], "the current token of every sequence")
    h, c = state_inputs(g, rnn)
    x = embed(g, embedding, token, "embedding")  # (B, E)
    x = g.node("Unsqueeze", [x, g.ints("time_axis", [0])], name="one_step")[0]  # (1, B, E)
    y, h_n, c_n = append_recurrent_stack(g, rnn, x, h0=h, c0=c)
    y = g.node("Squeeze", [y, g.ints("step_axis", [0])], name="drop_time")[0]  # (B, H)
    logits = gemm_head(g, linear, y, "logits")
    probabilities(g, logits)
    g.output("logits", FLOAT, ["batch", V], "scores of the next token")
    g.output("probabilities", FLOAT, ["batch", V], "softmax of logits")
    state_outputs(g, rnn, h_n, c_n)
    shape = f"float32 ({rnn.num_layers}, batch, {rnn.hidden_size})"
    inputs = {"token": "int64 (batch,)", "h": shape, **({"c": shape} if c else {})}
    outputs = {"logits": f"float32 (batch, {V})", "probabilities": f"float32 (batch, {V})", **state_doc(rnn)}
    return _finish(g, model, graph, inputs, outputs)


def language_model_step(model) -> onnx.ModelProto:
    net = model.net
    return _step(model, "step", net.embedding, net.rnn, net.head)


def decoder_step(model) -> onnx.ModelProto:
    net = model.net
    return _step(model, "decoder_step", net.dec_embedding, net.decoder, net.head)


def seq2seq_encoder(model) -> onnx.ModelProto:
    """source tokens, lengths -> the encoder state at each sequence's last real token (the decoder's h, c)."""
    net = model.net
    g = GraphBuilder("seq2seq_encoder")
    x, seq = token_inputs(g, net.enc_embedding)
    _, h_n, c_n = append_recurrent_stack(g, net.encoder, x, lengths=seq, prefix="encoder")
    state_outputs(g, net.encoder, h_n, c_n)
    return _finish(g, model, "encoder", dict(TOKENS_DOC), state_doc(net.encoder))


def _label_state(g: GraphBuilder, net) -> tuple[str, str | None]:
    """Input label (B,) -> the one-to-many decoder's initial state: h (L, B, H) from the label embedding,
    c zeros (LSTM)."""
    L, H = net.decoder.num_layers, net.decoder.hidden_size
    label = g.input("label", INT64, ["batch"], "class id (names in metadata 'labels')")
    v = embed(g, net.label_embedding, label, "label_embedding")  # (B, L*H)
    v = g.node("Reshape", [v, g.ints("layers_shape", [0, L, H])], name="per_layer")[0]  # (B, L, H)
    h = g.node("Transpose", [v], name="layer_major", perm=[1, 0, 2])[0]  # (L, B, H)
    c = zeros_like(g, h, "zero_cell") if net.decoder.mode == "LSTM" else None
    return h, c


def label_encoder(model) -> onnx.ModelProto:
    """One-to-many: label ids -> the decoder's initial state."""
    g = GraphBuilder("one_to_many_encoder")
    h, c = _label_state(g, model.net)
    state_outputs(g, model.net.decoder, h, c)
    return _finish(g, model, "encoder", {"label": "int64 (batch,)"}, state_doc(model.net.decoder))


def _teacher_forced(g: GraphBuilder, model, h0: str, c0: str | None,
                    inputs: dict[str, str]) -> onnx.ModelProto:
    """Decoder tokens (starting with <bos>) and lengths, from the state (h0, c0) -> logits at every step."""
    net = model.net
    V = net.head.out_features
    x, seq = token_inputs(g, net.dec_embedding)
    y, _, _ = append_recurrent_stack(g, net.decoder, x, h0=h0, c0=c0, lengths=seq, prefix="decoder")
    logits = head(g, net.head, batch_first(g, y, "decoder_batch_first"), "logits")
    probabilities(g, logits)
    g.output("logits", FLOAT, ["batch", "seq_len", V], "scores of the next token after every decoder input")
    g.output("probabilities", FLOAT, ["batch", "seq_len", V], "softmax of logits")
    outputs = {"logits": f"float32 (batch, seq_len, {V})", "probabilities": f"float32 (batch, seq_len, {V})"}
    return _finish(g, model, "full", {**inputs, **TOKENS_DOC}, outputs)


def label_decoder_full(model) -> onnx.ModelProto:
    """One-to-many, teacher forced: label and decoder tokens -> logits at every step."""
    g = GraphBuilder("one_to_many_full")
    h, c = _label_state(g, model.net)
    return _teacher_forced(g, model, h, c, {"label": "int64 (batch,)"})


def seq2seq_full(model) -> onnx.ModelProto:
    """Seq2seq, teacher forced: source tokens/lengths and decoder tokens/lengths -> logits at every step."""
    net = model.net
    g = GraphBuilder("seq2seq_full")
    x, seq = token_inputs(g, net.enc_embedding, prefix="source_")
    _, h_n, c_n = append_recurrent_stack(g, net.encoder, x, lengths=seq, prefix="encoder")
    inputs = {"source_tokens": TOKENS_DOC["tokens"], "source_lengths": TOKENS_DOC["lengths"]}
    return _teacher_forced(g, model, h_n, c_n, inputs)


def forecaster_full(model) -> onnx.ModelProto:
    """One-step forecast: a window of raw values (B, K, F) -> the next raw value of feature 0 (B, 1).

    The normalisation ((x - mean) / std per feature, and back for the prediction) is part of the graph, and
    so is the residual connection of a residual forecaster (the head's output added to the last value).
    """
    net = model.net
    F = model.num_features
    mean, std = normalisation(model)
    g = GraphBuilder("forecasting_full")
    window = g.input("window", FLOAT, ["batch", "window_len", F],
                     "past values, oldest first; feature 0 is the series, the others exogenous")
    z = g.node("Sub", [window, g.const("mean", mean)], name="centre")[0]
    z = g.node("Div", [z, g.const("std", std)], name="scale")[0]
    x = g.node("Transpose", [z], name="window_time_major", perm=[1, 0, 2])[0]  # (K, B, F)
    _, h_n, _ = append_recurrent_stack(g, net.rnn, x)
    scaled = gemm_head(g, net.head, last_layer_state(g, net.rnn, h_n), "scaled_prediction")
    if getattr(net, "residual", False):  # the head predicts the change from the last (normalised) value
        bounds = [g.ints("last_start", [-1, 0]), g.ints("last_end", [np.iinfo(np.int64).max, 1]),
                  g.ints("last_axes", [1, 2])]
        last = g.node("Slice", [z, *bounds], name="last_value")[0]  # (B, 1, 1)
        last = g.node("Squeeze", [last, g.ints("last_axis", [1])], name="last_value_2d")[0]  # (B, 1)
        scaled = g.node("Add", [scaled, last], name="residual")[0]
    scaled = g.node("Mul", [scaled, g.const("target_std", [std[0]])], name="unscale")[0]
    g.node("Add", [scaled, g.const("target_mean", [mean[0]])], name="uncentre", outputs=["prediction"])
    g.output("prediction", FLOAT, ["batch", 1], "the next value of the series")
    return _finish(g, model, "full", {"window": f"float32 (batch, window_len, {F})"},
                   {"prediction": "float32 (batch, 1)"})


Converter = Callable[[object], onnx.ModelProto]
CONVERTERS: dict[str, dict[str, Converter]] = {
    "language_model": {"full": language_model_full, "step": language_model_step},
    "classification": {"full": classifier_full},
    "tagging": {"full": tagger_full},
    "forecasting": {"full": forecaster_full},
    "one_to_many": {"full": label_decoder_full, "encoder": label_encoder, "decoder_step": decoder_step},
    "seq2seq": {"full": seq2seq_full, "encoder": seq2seq_encoder, "decoder_step": decoder_step},
}
