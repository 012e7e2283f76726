"""Conversion for InferenceService: SequenceInput -> engine inputs, predict results -> SequenceOutput.

Inputs are checked against the model (text vs values, vocabulary, feature size) and the server limits, with
errors naming the request field (e.g. "inputs[2].token_ids.ids[5]"). Server limits (max_batch_size,
max_sequence_length) give RESOURCE_EXHAUSTED naming the limit; everything else INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
from typing import Any

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn_engine.tokenizers import N_SPECIAL

from .errors import ServiceError, invalid
from .limits import over_limit

LABEL_TASKS = ("language_model", "classification", "tagging")
TEXT_OUTPUT_TASKS = ("one_to_many", "seq2seq")


def too_long(field: str, n: int, limit: int) -> ServiceError:
    return over_limit(field, n, "max_sequence_length", limit, "steps")


def batch_inputs(model, inputs, *, max_batch: int, max_len: int, field: str = "inputs") -> list:
    """Engine inputs for Model.predict from repeated SequenceInput."""
    if len(inputs) == 0:
        raise invalid(field, "expected at least one sequence, got none")
    if len(inputs) > max_batch:
        raise over_limit(field, len(inputs), "max_batch_size", max_batch, "sequences")
    return [sequence_input(model, x, f"{field}[{i}]", max_len) for i, x in enumerate(inputs)]


def sequence_input(model, x: pb.SequenceInput, field: str, max_len: int, *, allow_empty: bool = False) -> Any:
    """One input as the engine takes it: text, a list of token strings (tagging), or values/rows."""
    kind = x.WhichOneof("content")
    if kind is None:
        if allow_empty:
            return None
        raise invalid(field, "expected one of text, token_ids or values, got none")
    if model.task == "forecasting":
        if kind != "values":
            raise invalid(f"{field}.{kind}", "a forecasting model takes values (FloatSequence), not " + kind)
        return _values(model, x.values, f"{field}.values", max_len, allow_empty)
    if kind == "values":
        raise invalid(f"{field}.values", f"a {model.task} model takes text or token_ids, not values")
    if kind == "token_ids":
        if model.task == "one_to_many":
            raise invalid(f"{field}.token_ids", "a one_to_many model takes its label as text")
        return _token_ids(model, list(x.token_ids.ids), f"{field}.token_ids.ids", max_len, allow_empty)
    text = x.text
    if not text and not allow_empty:
        raise invalid(f"{field}.text", "expected a non-empty text")
    if model.task == "one_to_many" and text not in model.label_index:
        shown = model.labels if len(model.labels) <= 20 else [*model.labels[:20], "..."]
        raise invalid(f"{field}.text", f"expected one of the trained labels {shown}, got {text!r}")
    if model.task != "one_to_many":  # (a one_to_many input is a label, checked above)
        n = len(model.tokenizer.encode(text)) if len(text) > max_len else len(text)
        if n > max_len:
            raise too_long(f"{field}.text", n, max_len)
    return text


def _token_ids(model, ids: list[int], field: str, max_len: int, allow_empty: bool) -> Any:
    if not ids and not allow_empty:
        raise invalid(field, "expected at least one token id")
    if len(ids) > max_len:
        raise too_long(field, len(ids), max_len)
    vocab = model.tokenizer.vocab_size
    for j, i in enumerate(ids):
        if not N_SPECIAL <= i < vocab:
            raise invalid(
                f"{field}[{j}]",
                f"expected a token id in [{N_SPECIAL}, {vocab}) (ids below "
                f"{N_SPECIAL} are special tokens), got {i}",
            )
    if model.task == "tagging":
        return [model.tokenizer.token_text(i) for i in ids]
    return model.tokenizer.decode(ids)


def forecast_prompt(model, seq: pb.FloatSequence, max_len: int) -> Any:
    """StreamGenerate.prompt_values for a forecaster, checked like a Predict input."""
    return _values(model, seq, "prompt_values", max_len, False)


def _values(model, seq: pb.FloatSequence, field: str, max_len: int, allow_empty: bool) -> Any:
    features = seq.feature_size or 1
    want = int(getattr(model, "num_features", 1) or 1)
    if features < 0 or features != want:
        raise invalid(
            f"{field}.feature_size", f"expected {want} (the model's features), got {seq.feature_size}"
        )
    data = list(seq.data)
    if len(data) % features:
        raise invalid(
            f"{field}.data", f"expected a multiple of feature_size={features} values, got {len(data)}"
        )
    for j, v in enumerate(data):
        if not math.isfinite(v):
            raise invalid(f"{field}.data[{j}]", f"expected a finite number, got {v}")
    steps = len(data) // features
    if steps == 0 and not allow_empty:
        raise invalid(f"{field}.data", "expected at least one value")
    if steps > max_len:
        raise too_long(f"{field}.data", steps, max_len)
    if features == 1:
        return data
    return [data[t * features : (t + 1) * features] for t in range(steps)]


# ------------------------------------------------------------------------------------------ outputs
def output_plan(model, output: int, top_k: int, field_prefix: str = "", *, streaming: bool = False
                ) -> tuple[int, int]:
    """(effective OutputKind, k to ask the engine for); validates the pair against the model's task (and
    PredictStream, which has no LOG_LIKELIHOOD: score whole texts with Predict)."""
    f_out, f_k = field_prefix + "output", field_prefix + "top_k"
    if output not in pb.OutputKind.values():
        raise invalid(f_out, f"expected an OutputKind, got {output}")
    if top_k < 0:
        raise invalid(f_k, f"expected an int >= 0, got {top_k}")
    task = model.task
    if output == pb.OUTPUT_KIND_LOG_LIKELIHOOD:
        if streaming:
            raise invalid(f_out, "LOG_LIKELIHOOD is a Predict output (whole texts), not a PredictStream one")
        if task != "language_model":
            raise invalid(f_out, f"LOG_LIKELIHOOD scores text with a language model, not a {task} model")
        return output, 1
    if task == "forecasting":
        if output not in (pb.OUTPUT_KIND_UNSPECIFIED, pb.OUTPUT_KIND_VALUES):
            raise invalid(f_out, f"a forecasting model outputs VALUES, not {pb.OutputKind.Name(output)}")
        return pb.OUTPUT_KIND_VALUES, 1
    if task in TEXT_OUTPUT_TASKS:
        if output != pb.OUTPUT_KIND_UNSPECIFIED:
            raise invalid(f_out, f"a {task} model outputs text; leave output unset")
        return pb.OUTPUT_KIND_UNSPECIFIED, 1
    if output == pb.OUTPUT_KIND_VALUES:
        raise invalid(f_out, "VALUES is for forecasting models; use TOP_K or DISTRIBUTION")
    classes = model.tokenizer.vocab_size if task == "language_model" else len(model.labels)
    if output == pb.OUTPUT_KIND_DISTRIBUTION:
        return output, classes
    return pb.OUTPUT_KIND_TOP_K, min(max(top_k, 1), classes)


def _scores(
    labels: list[str], ids: list[int], probs: list[float], output: int, classes: int
) -> pb.StepOutput:
    step = pb.StepOutput()
    if output == pb.OUTPUT_KIND_DISTRIBUTION:
        dist = [0.0] * classes
        for i, p in zip(ids, probs, strict=True):
            dist[i] = p
        step.distribution.extend(dist)
    else:
        step.top_k.extend(
            pb.LabelScore(label=lab, id=i, probability=p)
            for lab, i, p in zip(labels, ids, probs, strict=True)
        )
    return step


def sequence_output(model, result: dict[str, Any], output: int) -> pb.SequenceOutput:
    """One Model.predict / predict_chunk result dict (rnn_engine/model.py docstring) as a SequenceOutput."""
    task = model.task
    out = pb.SequenceOutput()
    if output == pb.OUTPUT_KIND_LOG_LIKELIHOOD:  # a Model.score result
        out.steps.extend(pb.StepOutput(log_probability=lp) for lp in result["log_probs"])
        out.length = len(result["tokens"])
        out.log_likelihood, out.perplexity = result["log_likelihood"], result["perplexity"]
        return out
    if task == "language_model":
        classes = model.tokenizer.vocab_size
        for s in result["top_tokens"]:
            out.steps.append(_scores(s["texts"], s["ids"], s["probs"], output, classes))
        out.length = len(result["tokens"])
    elif task == "classification":
        ids = [model.label_index[lab] for lab in result["labels"]]
        out.steps.append(_scores(result["labels"], ids, result["probs"], output, len(model.labels)))
        out.length = int(result["length"])
    elif task == "tagging":
        top_tags = result.get("top_tags") or [[t] for t in result["tags"]]
        top_probs = result.get("top_probs") or [[p] for p in result["probs"]]
        for tags, probs in zip(top_tags, top_probs, strict=True):
            ids = [model.label_index[t] for t in tags]
            out.steps.append(_scores(tags, ids, probs, output, len(model.labels)))
        out.tokens.extend(str(t) for t in result.get("tokens", []))
        out.length = len(result["tags"])
    elif task == "forecasting":
        out.steps.append(pb.StepOutput(values=[float(v) for v in result["values"]]))
        out.length = int(result["length"])
    else:
        out.text = result.get("text", "")
        out.token_ids.extend(int(i) for i in result.get("tokens", []))
        out.length = int(result.get("length", 0))
    return out


def token_to_pb(token: Any, index: int) -> ipb.StreamGenerateResponse:
    """An engine GeneratedToken as one StreamGenerate message."""
    response = ipb.StreamGenerateResponse()
    msg = response.token  # filled in place: building a GeneratedToken and copying it costs twice as much
    msg.text, msg.id, msg.log_probability, msg.index = token.text, token.id, token.logprob, index
    if token.value is not None:
        msg.value = float(token.value)
    return response


def summary_to_pb(end: Any) -> ipb.StreamGenerateResponse:
    """The engine's GenerationEnd as the last StreamGenerate message (stop_sequence: the one that matched)."""
    from .convert import FINISH

    hit = end.stop_sequence if end.finish_reason == "stop" else ""
    return ipb.StreamGenerateResponse(
        summary=ipb.GenerationSummary(
            finish_reason=FINISH.get(end.finish_reason, ipb.FINISH_REASON_UNSPECIFIED),
            prompt_tokens=int(end.prompt_tokens),
            generated_tokens=int(end.generated_tokens),
            text=end.text,
            stop_sequence=hit,
        )
    )
