"""Choosing the next token: the vectorised row-wise choice (penalty, specials, temperature, top-k, top-p)."""

from __future__ import annotations

from ..backend import xp
from ..config import GenerationConfig
from ..data.tokenizers import BOS_ID, PAD_ID, UNK_ID
from ..nn.losses import log_softmax

NEVER_SAMPLED = (PAD_ID, UNK_ID, BOS_ID)


def choose(logits, cfg: GenerationConfig, history: list[int], rng: xp.random.Generator) -> int:
    """Pick the next id from (V,) logits: penalty, never-sampled specials, temperature, top-k, top-p."""
    return choose_rows(xp.asarray(logits)[None], [cfg], [history], [rng])[0][0]


def choose_rows(logits, cfgs, histories, rngs) -> tuple[list[int], list[float]]:
    """Next ids of B requests at once from (B, V) logits, each row with its own settings, history and random
    generator; also each id's log-probability under the model (before penalty, temperature, truncation).

    Row by row: repetition penalty on the ids seen, pad/unk/bos excluded, then greedy (temperature 0) or a
    draw from softmax(z / temperature) restricted to the top_k most likely ids and to the smallest prefix of
    them whose mass reaches top_p (ids sorted by probability, ties by id): one `rng.random()` u per sampled
    row picks the first id whose cumulative mass exceeds u times the kept mass. Every operation works on
    each row alone (elementwise, or along the row), so a row's id is the same whatever the other rows are:
    a request gets the same tokens alone as in any batch. One pass over the batch instead of one per row.
    """
    z = xp.array(logits, dtype=xp.float64)  # a copy: the penalty and the exclusions write into it
    B, V = z.shape
    logprob_all = log_softmax(z)  # validates (finite) too
    for b, (cfg, history) in enumerate(zip(cfgs, histories, strict=True)):
        if cfg.repetition_penalty != 1.0 and history:
            seen = xp.unique(xp.asarray(history))
            row = z[b]
            row[seen] = xp.where(row[seen] > 0, row[seen] / cfg.repetition_penalty,
                                 row[seen] * cfg.repetition_penalty)
    z[:, list(NEVER_SAMPLED)] = -xp.inf
    temps = xp.array([cfg.temperature for cfg in cfgs], dtype=xp.float64)
    ids = xp.argmax(z, axis=1)  # greedy rows keep these
    sampled = xp.flatnonzero(temps > 0.0)
    if sampled.size:
        zs = z[sampled]
        zs = xp.where(xp.isfinite(zs), zs / temps[sampled, None], -1e300)
        logp = zs - zs.max(axis=1, keepdims=True)
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        order = xp.argsort(-logp, axis=1, kind="stable")
        cum = xp.cumsum(xp.exp(xp.take_along_axis(logp, order, axis=1)), axis=1)
        keep = xp.full(sampled.size, V - len(NEVER_SAMPLED))
        for j, b in enumerate(sampled):
            cfg = cfgs[b]
            if cfg.top_k:
                keep[j] = min(keep[j], cfg.top_k)
            if cfg.top_p < 1.0:  # smallest prefix whose mass reaches top_p
                keep[j] = min(keep[j], int(xp.count_nonzero(cum[j] < cfg.top_p)) + 1)
        rows = xp.arange(sampled.size)
        total = cum[rows, keep - 1]
        u = xp.array([rngs[b].random() for b in sampled]) * total
        inside = xp.arange(V)[None, :] < keep[:, None]
        pick = xp.count_nonzero((cum <= u[:, None]) & inside, axis=1)
        last = xp.count_nonzero((cum < total[:, None]) & inside, axis=1)  # in case u * total rounded up
        pick = xp.minimum(pick, last)
        ids[sampled] = order[rows, pick]
    ids = ids.tolist()
    return ids, logprob_all[xp.arange(B), ids].tolist()
