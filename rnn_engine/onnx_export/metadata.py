"""The metadata_props written into every exported file, so that a consumer needs nothing from this project.

Keys (each value is a JSON string):
- rnn_config: {"format_version", "kind" (the model's task), "task", "graph", "opset", "cell", "hidden_size",
  "num_layers", "embedding_dim", "bidirectional", "vocab_size", "num_features", "window", "dtype",
  "inputs"/"outputs" (name -> shape and meaning), "tokenizer" (see below), "special_tokens" (name -> id),
  "prompt_prefix" (ids a language model reads before the prompt: [<bos>]; feed them yourself: the "full"
  graph's tokens are prompt_prefix + the text's ids, and its step i+1 is what Predict returns for the text's
  token i; the "step" graph starts from zero states with token <bos>), "prompt_prefix_in_tokens" (true: the
  caller puts prompt_prefix into `tokens`), "never_generate" (ids the engine's sampler never picks: <pad>,
  <unk>, <bos>)}
- vocab (text models): a list with one entry per id, in id order: {"token": str, "special": bool}.
- labels (classifier, tagger, one-to-many): the class names in id order.
- normalisation (forecaster): {"mean": [F], "std": [F], "applied_in_graph": true, "target_feature": 0}.

Text to ids ("tokenizer" in rnn_config): "char" maps each character to its token's id; "byte" maps each UTF-8
byte b to id b + byte_offset; "word" lower-cases if "lowercase", splits with the regex "pattern" (findall) and
maps each piece. Unknown pieces get <unk> (id 1).
Ids to text: "char" concatenates tokens; "byte" maps id i >= 4 to the byte i - 4 and decodes the bytes as
UTF-8; "word" joins tokens with a space except at the start, before any of "attach_left" and after any of
"attach_right". Specials (<pad>, <bos>, <eos>) are not shown; <eos> ends generation.
"""

from __future__ import annotations

import json
from typing import Any

from ..data.tokenizers import (
    ATTACH_LEFT,
    ATTACH_RIGHT,
    BOS_ID,
    N_SPECIAL,
    PAD_ID,
    SPECIALS,
    UNK_ID,
    WORD_PATTERN,
)
from .builder import FORMAT_VERSION, OPSET


def tokenizer_info(tokenizer) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": tokenizer.kind}
    if tokenizer.kind == "byte":
        info["byte_offset"] = N_SPECIAL
    if tokenizer.kind == "word":
        info.update(pattern=WORD_PATTERN.pattern, lowercase=bool(getattr(tokenizer, "lowercase", False)),
                    attach_left="".join(sorted(ATTACH_LEFT)), attach_right="".join(sorted(ATTACH_RIGHT)))
    return info


def model_metadata(model, graph: str, inputs: dict[str, str], outputs: dict[str, str]) -> dict[str, str]:
    """metadata_props for one exported graph of `model` (an rnn_engine.model.Model)."""
    c = model.config
    config: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "kind": model.task, "task": model.task, "graph": graph,
        "opset": OPSET, "cell": c.cell, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
        "bidirectional": c.bidirectional, "dtype": "float32", "inputs": inputs, "outputs": outputs,
    }
    props: dict[str, str] = {}
    tok = model.tokenizer
    if tok is not None:
        config.update(embedding_dim=c.embedding_dim, vocab_size=tok.vocab_size, tokenizer=tokenizer_info(tok),
                      special_tokens={name.strip("<>"): i for i, name in enumerate(SPECIALS)},
                      never_generate=[PAD_ID, UNK_ID, BOS_ID])
        if model.task == "language_model":
            config["prompt_prefix"] = [SPECIALS.index("<bos>")]
            config["prompt_prefix_in_tokens"] = True
        vocab = [{"token": t, "special": i < N_SPECIAL} for i, t in enumerate(tok.tokens)]
        props["vocab"] = json.dumps(vocab, ensure_ascii=False)
    if model.labels is not None:
        config["num_labels"] = len(model.labels)
        props["labels"] = json.dumps(list(model.labels), ensure_ascii=False)
    if model.task == "forecasting":
        config.update(num_features=model.num_features, window=c.window)
        mean, std = normalisation(model)
        props["normalisation"] = json.dumps({"mean": mean, "std": std, "applied_in_graph": True,
                                             "target_feature": 0})
    props["rnn_config"] = json.dumps(config, ensure_ascii=False)
    return props


def normalisation(model) -> tuple[list[float], list[float]]:
    """Per-feature (mean, std) of a forecaster's inputs; identity when the model has none yet."""
    F = model.num_features
    norm = model.norm or {"mean": [0.0] * F, "std": [1.0] * F}
    return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
