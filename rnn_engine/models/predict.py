"""Batch and streaming prediction per model kind (`Model.predict` / `Model.predict_chunk`, under no_grad).

Result shapes are documented in `rnn_engine/model.py`.
"""

from __future__ import annotations

from typing import Any

from ..backend import xp
from ..config import GenerationConfig
from ..data.tokenizers import BOS_ID, UNK_ID
from ..errors import InvalidInput


def _top(p, k: int) -> tuple[list[int], list[float]]:
    """Indices and values of the k largest probabilities, most likely first (ties: lower index first)."""
    order = xp.argsort(-p, kind="stable")[: min(k, p.shape[-1])]
    return [int(i) for i in order], [float(p[i]) for i in order]


def _lm_steps(model, probs, n: int, k: int) -> list[dict]:
    out = []
    for t in range(n):
        ids, ps = _top(probs[t], k)
        out.append({"ids": ids, "texts": [model.tokenizer.token_text(i) for i in ids], "probs": ps})
    return out


def _tag_steps(model, probs, n: int, k: int) -> dict:
    tags, tprobs, top_tags, top_probs = [], [], [], []
    for t in range(n):
        ids, ps = _top(probs[t], k)
        tags.append(model.labels[ids[0]])
        tprobs.append(ps[0])
        top_tags.append([model.labels[i] for i in ids])
        top_probs.append(ps)
    res: dict[str, Any] = {"tags": tags, "probs": tprobs}
    if k > 1:
        res.update(top_tags=top_tags, top_probs=top_probs)
    return res


def tagging_ids(model, name: str, item: Any) -> tuple[list[int], list[str]]:
    """A text, or a list of token strings (each looked up whole; unknown -> <unk>), as ids and token texts."""
    tok = model.tokenizer
    if isinstance(item, list | tuple):
        if not item or not all(isinstance(t, str) and t for t in item):
            raise InvalidInput(f"{name}: expected a non-empty list of non-empty token strings", field=name)
        ids = []
        for t in item:
            pieces = tok.encode(t)
            ids.append(pieces[0] if len(pieces) == 1 else UNK_ID)
        model.check_length(name, len(ids))
        return ids, list(item)
    ids = model.encode_text(name, item)
    return ids, [tok.token_text(i) for i in ids]


def predict_language_model(model, inputs: list, k: int) -> list[dict]:
    seqs = [[BOS_ID] + model.encode_text(f"inputs[{i}]", s) for i, s in enumerate(inputs)]
    ids, lengths = model.pad(seqs)
    logits, _ = model.net.forward(ids, lengths)
    probs = model.probs(logits)  # (B, T, V)
    return [
        {"tokens": seqs[b][1:], "top_tokens": _lm_steps(model, probs[b, 1:], len(seqs[b]) - 1, k)}
        for b in range(len(seqs))
    ]


def predict_classification(model, inputs: list, k: int) -> list[dict]:
    seqs = [model.encode_text(f"inputs[{i}]", s) for i, s in enumerate(inputs)]
    ids, lengths = model.pad(seqs)
    logits, _ = model.net.forward(ids, lengths)
    probs = model.probs(logits)  # (B, C)
    results = []
    for b in range(len(seqs)):
        top, ps = _top(probs[b], k)
        results.append({"labels": [model.labels[i] for i in top], "probs": ps, "length": len(seqs[b])})
    return results


def predict_tagging(model, inputs: list, k: int) -> list[dict]:
    pairs = [tagging_ids(model, f"inputs[{i}]", s) for i, s in enumerate(inputs)]
    ids, lengths = model.pad([p[0] for p in pairs])
    logits, _ = model.net.forward(ids, lengths)
    probs = model.probs(logits)  # (B, T, C)
    return [
        {"tokens": pairs[b][1], **_tag_steps(model, probs[b], len(pairs[b][0]), k)} for b in range(len(pairs))
    ]


def series_rows(model, name: str, item: Any) -> xp.ndarray:
    """A list of values (one feature) or of rows [value, exog...] -> normalised (n, F) array."""
    F = model.num_features
    try:
        arr = xp.asarray(item, dtype=xp.float64)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{name}: expected a list of numbers or of rows of {F} numbers", field=name
        ) from None
    if arr.ndim == 1 and F == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != F or arr.shape[0] == 0:
        raise InvalidInput(
            f"{name}: expected a non-empty series of rows with {F} value(s) each, got shape {arr.shape}",
            field=name,
        )
    if not xp.isfinite(arr).all():
        raise InvalidInput(f"{name}: contains NaN or Inf", field=name)
    model.check_length(name, arr.shape[0])
    mean, std = xp.asarray(model.norm["mean"]), xp.asarray(model.norm["std"])
    return ((arr - mean) / std).astype(model.net.rnn.dtype)


def next_value(model, rows: xp.ndarray) -> float:
    """Denormalised prediction of the value after the last `window` normalised rows (n, F)."""
    pred, _ = model.net.forward(rows[None, -model.config.window :])
    return float(pred[0, 0]) * model.norm["std"][0] + model.norm["mean"][0]


def predict_forecasting(model, inputs: list, k: int) -> list[dict]:
    rows = [series_rows(model, f"inputs[{i}]", s) for i, s in enumerate(inputs)]
    return [{"values": [next_value(model, r)], "length": int(r.shape[0])} for r in rows]


def predict_decoder(model, inputs: list, k: int) -> list[dict]:
    results = []
    for item in inputs:
        if model.task == "one_to_many":
            cfg = GenerationConfig(
                temperature=0.0, label=item, max_new_tokens=min(model.config.max_length, 200)
            )
            prompt = ""
        else:
            cfg = GenerationConfig(temperature=0.0, max_new_tokens=min(model.config.max_length, 200))
            prompt = item
        tokens = list(model.generate(prompt, cfg))[:-1]  # the GeneratedToken records: all but the end
        n = 0 if model.task == "one_to_many" else len(model.encode_text("inputs", item))
        results.append({"text": "".join(t.text for t in tokens), "tokens": [t.id for t in tokens],
                        "length": n})
    return results


PREDICTORS = {
    "language_model": predict_language_model,
    "classification": predict_classification,
    "tagging": predict_tagging,
    "forecasting": predict_forecasting,
    "one_to_many": predict_decoder,
    "seq2seq": predict_decoder,
}


def predict_chunk(model, inputs: list, state: dict, k: int) -> tuple[list[dict], dict]:
    """Advance every stream by its chunk; see the streaming paragraph in model.py."""
    new = dict(state)
    if model.task == "forecasting":
        chunks = [series_rows(model, f"inputs[{b}]", s) for b, s in enumerate(inputs)]
        rows = [xp.concatenate([state["rows"][b], c])[-model.config.window :] for b, c in enumerate(chunks)]
        new["rows"] = rows
        out = [
            {"values": [next_value(model, r)], "length": int(c.shape[0])}
            for r, c in zip(rows, chunks, strict=True)
        ]
        return out, new
    if model.task == "tagging":
        pairs = [tagging_ids(model, f"inputs[{b}]", s) for b, s in enumerate(inputs)]
        seqs = [p[0] for p in pairs]
    else:
        seqs = [model.encode_text(f"inputs[{b}]", s) for b, s in enumerate(inputs)]
    ids, lengths = model.pad(seqs)
    logits, new["rnn"] = model.net.forward(ids, lengths, state["rnn"])
    probs = model.probs(logits)
    if model.task == "language_model":
        results = [
            {"tokens": s, "top_tokens": _lm_steps(model, probs[b], len(s), k)} for b, s in enumerate(seqs)
        ]
    elif model.task == "tagging":
        results = [
            {"tokens": pairs[b][1], **_tag_steps(model, probs[b], len(seqs[b]), k)} for b in range(len(seqs))
        ]
    else:
        results = []
        for b in range(len(seqs)):
            top, ps = _top(probs[b], k)
            results.append({"labels": [model.labels[i] for i in top], "probs": ps, "length": len(seqs[b])})
    return results, new
