"""Scoring text with a language model: per-token log-probabilities, log-likelihood and perplexity.

The model reads <bos> then the text, so every token of the text is scored, the first one as P(t_1 | <bos>)
(which `predict` does not return: its first distribution is the one after t_1). Natural logarithms.
"""

from __future__ import annotations

import math

from ..backend import xp
from ..data.tokenizers import BOS_ID
from ..errors import FailedPrecondition


def score_language_model(model, texts: list) -> list[dict]:
    """One {"tokens": [ids], "log_probs": [log P(t_i | <bos>, t_<i)], "log_likelihood": sum,
    "perplexity": exp(-sum / n)} per text (see Model.score)."""
    if model.task != "language_model":
        raise FailedPrecondition(f"score: only a language model scores text, not a {model.task} model")
    seqs = [[BOS_ID] + model.encode_text(f"texts[{i}]", t) for i, t in enumerate(texts)]
    ids, lengths = model.pad(seqs)
    logits, _ = model.net.forward(ids, lengths)
    z = xp.asarray(logits, dtype=xp.float64)  # (B, T, V)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))  # log-softmax
    results = []
    for b, seq in enumerate(seqs):
        n = len(seq) - 1
        lp = log_p[b, xp.arange(n), seq[1:]]  # the distribution at step t scores token t + 1
        total = float(lp.sum())
        results.append({"tokens": seq[1:], "log_probs": [float(v) for v in lp], "log_likelihood": total,
                        "perplexity": math.exp(min(-total / n, 700.0))})
    return results
