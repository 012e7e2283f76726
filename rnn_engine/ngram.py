"""Count-based n-gram language model over token ids: the baseline an RNN language model has to beat.

Smoothing (choose with `smoothing`):
- "witten_bell" (default): interpolated Witten-Bell, recursive down to a uniform distribution over the vocab:
      P_k(w | h) = (c(h, w) + n(h) * P_{k-1}(w | h')) / (c(h) + n(h))      if c(h) > 0, else P_{k-1}(w | h')
  where h is the last k ids, h' the last k-1, c(h) the count of h as a context, n(h) the number of distinct
  ids seen after h, and P_{-1}(w) = 1 / V. Every id gets probability > 0 and each level sums to one.
- "add_k": (c(h, w) + alpha) / (c(h) + alpha * V) with h the full (order-1)-id context (Laplace for alpha=1).
- "kneser_ney": interpolated modified Kneser-Ney (Chen & Goodman 1998, sec. 4.1.6), recursive down to 1 / V:
      P_k(w | h) = max(a(h, w) - D_k(a(h, w)), 0) / a(h) + gamma(h) P_{k-1}(w | h')  if a(h) > 0, else P_{k-1}
      gamma(h) = (D_k1 N1(h) + D_k2 N2(h) + D_k3 N3+(h)) / a(h)
  where a is the raw count c(h, w) at the highest order and the continuation count N1+(. h w) (distinct ids
  seen before h w) below it, a(h) = sum_w a(h, w), Ni(h) the number of w with a(h, w) = i (3+: >= 3), and the
  discounts of level k come from its counts of counts n1..n4: Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1,
  D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3 (each clipped to [0, i]; 0.5, 1, 1.5 where a count of counts is 0).

Counts are kept as sorted int64 codes of (context, next) so training and scoring are vectorised NumPy.
Scoring a sequence `ids` predicts ids[1:] from their preceding ids (context truncated at the start), which is
what an RNN language model fed the same stream predicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import InvalidInput, NotTrained
from .validate import as_token_ids, check_positive_int, is_int

SMOOTHINGS = ("witten_bell", "add_k", "kneser_ney")


class NGramModel:
    """An order-`order` model: each id is predicted from the `order - 1` ids before it.

    Args:
        order: n (1 = unigram, 3 = trigram), 1..10.
        alpha: the add-k constant (used by smoothing="add_k" only), > 0.
        smoothing: "witten_bell", "add_k" or "kneser_ney" (see the module docstring).
    """

    def __init__(self, order: int = 3, alpha: float = 0.1, smoothing: str = "witten_bell") -> None:
        self.order = check_positive_int("order", order)
        if self.order > 10:
            raise InvalidInput(f"order: expected an int in [1, 10], got {order}", field="order")
        is_number = isinstance(alpha, int | float) and not isinstance(alpha, bool)
        if not is_number or not 0 < alpha < math.inf:
            raise InvalidInput(f"alpha: expected a finite number > 0, got {alpha!r}", field="alpha")
        if smoothing not in SMOOTHINGS:
            raise InvalidInput(
                f"smoothing: expected one of {SMOOTHINGS}, got {smoothing!r}",
                field="smoothing",
            )
        self.alpha, self.smoothing = float(alpha), smoothing
        self.vocab_size: int | None = None
        # per context length k: sorted (context, next) codes and their counts; sorted context codes with
        # total count c(h) and distinct-follower count n(h)
        self._pairs: list[tuple[np.ndarray, np.ndarray]] = []
        self._contexts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # kneser_ney, per level: (pair codes, modified counts), (contexts, a(h), N1, N2, N3+), (D1, D2, D3+)
        self._kn: list[tuple[tuple, tuple, tuple[float, float, float]]] = []

    def __repr__(self) -> str:
        return f"NGramModel(order={self.order}, smoothing={self.smoothing!r}, vocab_size={self.vocab_size})"

    # ------------------------------------------------------------------------------------------ fitting
    def _context_codes(self, ids: np.ndarray, k: int) -> np.ndarray:
        """(N,) code of the k ids before each position (garbage for positions < k; callers mask them)."""
        V, codes = self.vocab_size, np.zeros(len(ids), dtype=np.int64)
        for j in range(1, k + 1):
            codes[j:] = codes[j:] * V + ids[:-j]
        return codes

    def fit(self, ids: Sequence[int] | np.ndarray, vocab_size: int) -> NGramModel:
        """Count every n-gram up to `order` in the id stream `ids` (N,) with ids in [0, vocab_size)."""
        V = check_positive_int("vocab_size", vocab_size, minimum=2)
        if float(V) ** self.order >= 2.0**62:
            raise InvalidInput(
                f"order: {self.order} is too high for vocab_size {V} (codes overflow int64)",
                field="order",
            )
        ids = self._ids("ids", ids, V)
        if ids.size < 2:
            raise InvalidInput(f"ids: expected at least 2 token ids to fit, got {ids.size}", field="ids")
        self.vocab_size = V
        self._pairs, self._contexts = [], []
        for k in range(self.order):
            pair_codes = (self._context_codes(ids, k) * V + ids)[k:]
            pairs, counts = np.unique(pair_codes, return_counts=True)
            ctx, first = np.unique(pairs // V, return_index=True)
            totals = np.add.reduceat(counts, first)
            distinct = np.diff(np.append(first, len(pairs)))
            self._pairs.append((pairs, counts))
            self._contexts.append((ctx, totals, distinct))
        self._kn = self._kneser_ney_tables() if self.smoothing == "kneser_ney" else []
        return self

    def truncated(self, order: int, smoothing: str | None = None) -> NGramModel:
        """The model of a lower `order` (and any smoothing) on the same counts, without counting again: the
        tables of levels below `order` do not depend on the order counted up to."""
        self._check_fitted()
        if not is_int(order) or not 1 <= order <= self.order:
            raise InvalidInput(f"order: expected an int in [1, {self.order}], got {order!r}", field="order")
        out = NGramModel(order, self.alpha, smoothing or self.smoothing)
        out.vocab_size = self.vocab_size
        out._pairs, out._contexts = self._pairs[:order], self._contexts[:order]
        out._kn = out._kneser_ney_tables() if out.smoothing == "kneser_ney" else []
        return out

    def _kneser_ney_tables(self) -> list:
        """Per level: the raw (top) or continuation (lower) counts, their context sums and discounts."""
        V, top = self.vocab_size, self.order - 1
        levels: list = [None] * self.order
        for k in range(top, -1, -1):
            if k == top:
                pairs, counts = self._pairs[k]
            else:  # N1+(. h w): distinct (k+1)-grams v h w, i.e. level k+1's pairs with the oldest id dropped
                upper = self._pairs[k + 1][0]
                pairs, counts = np.unique((upper // V) // V * V + upper % V, return_counts=True)
            ctx, first = np.unique(pairs // V, return_index=True)
            sums = [np.add.reduceat(x, first) for x in (counts, counts == 1, counts == 2, counts >= 3)]
            levels[k] = ((pairs, counts), tuple(s.astype(np.int64) for s in [ctx, *sums]), _discounts(counts))
        return levels

    # ------------------------------------------------------------------------------------------ scoring
    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
        """values[key == query] for each query, 0 where the key is absent."""
        idx = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        return np.where(keys[idx] == query, values[idx], 0)

    def _probs(self, contexts: list[np.ndarray], available: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """P(nxt | context) (M,), where contexts[k] (M,) are k-id context codes valid when available >= k."""
        V = self.vocab_size
        if self.smoothing == "add_k":
            k = np.minimum(available, self.order - 1)
            p = np.empty(len(nxt))
            for level in np.unique(k):  # usually just order-1; shorter only at the start of a stream
                m = k == level
                pairs, counts = self._pairs[level]
                ctx, totals, _ = self._contexts[level]
                c_hw = self._lookup(pairs, counts, contexts[level][m] * V + nxt[m])
                c_h = self._lookup(ctx, totals, contexts[level][m])
                p[m] = (c_hw + self.alpha) / (c_h + self.alpha * V)
            return p
        p = np.full(len(nxt), 1.0 / V)
        if self.smoothing == "kneser_ney":
            for level, ((pairs, counts), (ctx, a_h, n1, n2, n3), (d1, d2, d3)) in enumerate(self._kn):
                a_hw = self._lookup(pairs, counts, contexts[level] * V + nxt)
                h = contexts[level]
                total = self._lookup(ctx, a_h, h)
                gamma = (d1 * self._lookup(ctx, n1, h) + d2 * self._lookup(ctx, n2, h)
                         + d3 * self._lookup(ctx, n3, h)) / np.maximum(total, 1)
                d = np.select([a_hw == 0, a_hw == 1, a_hw == 2], [0.0, d1, d2], d3)
                use = (available >= level) & (total > 0)
                p = np.where(use, np.maximum(a_hw - d, 0.0) / np.maximum(total, 1) + gamma * p, p)
            return p
        for level in range(self.order):
            pairs, counts = self._pairs[level]
            ctx, totals, distinct = self._contexts[level]
            c_hw = self._lookup(pairs, counts, contexts[level] * V + nxt)
            c_h = self._lookup(ctx, totals, contexts[level])
            n_h = self._lookup(ctx, distinct, contexts[level])
            use = (available >= level) & (c_h > 0)
            p = np.where(use, (c_hw + n_h * p) / np.maximum(c_h + n_h, 1), p)
        return p

    def _ids(self, name: str, value, vocab_size: int | None = None) -> np.ndarray:
        """Validate a 1-D id sequence (an empty one included) against the vocabulary."""
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise InvalidInput(
                f"{name}: expected a 1-D sequence of token ids, got shape {arr.shape}",
                field=name,
            )
        arr = arr.astype(np.int64) if arr.size == 0 else arr
        return as_token_ids(name, arr, vocab_size or self.vocab_size)

    def _check_fitted(self) -> None:
        if self.vocab_size is None:
            raise NotTrained("NGramModel: call fit(ids, vocab_size) first")

    def next_distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(w | context) for every id w: (V,) float64 summing to 1 (only the last order-1 ids matter)."""
        self._check_fitted()
        V = self.vocab_size
        ctx = self._ids("context", context)
        ctx = ctx[max(0, ctx.size - (self.order - 1)):]
        stream = np.append(ctx, 0)
        codes = [np.full(V, self._context_codes(stream, k)[-1]) for k in range(self.order)]
        return self._probs(codes, np.full(V, len(ctx)), np.arange(V))

    def log_prob(self, context: Sequence[int], next_id: int) -> float:
        """Natural log of P(next_id | context)."""
        self._check_fitted()
        next_id = self._ids("next_id", [next_id])[0]
        return float(np.log(self.next_distribution(context)[next_id]))

    def token_log_probs(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N-1,) natural-log probabilities of ids[1:], each given the ids before it."""
        self._check_fitted()
        ids = self._ids("ids", ids)
        if ids.size < 2:
            raise InvalidInput(f"ids: expected at least 2 token ids to score, got {ids.size}", field="ids")
        codes = [self._context_codes(ids, k)[1:] for k in range(self.order)]
        available = np.arange(1, ids.size)
        return np.log(self._probs(codes, available, ids[1:]))

    def perplexity(self, ids: Sequence[int] | np.ndarray) -> float:
        """exp(mean negative log-likelihood) of ids[1:]."""
        return float(np.exp(-self.token_log_probs(ids).mean()))

    def bits_per_token(self, ids: Sequence[int] | np.ndarray) -> float:
        """Mean -log2 P of ids[1:] (bits per character for a char tokenizer)."""
        return float(-self.token_log_probs(ids).mean() / math.log(2))


def _discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Modified Kneser-Ney D1, D2, D3+ from the counts of counts n1..n4 (Chen & Goodman's estimates)."""
    n1, n2, n3, n4 = (int((counts == i).sum()) for i in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
    d1 = 1 - 2 * y * n2 / n1 if n1 else 0.5
    d2 = 2 - 3 * y * n3 / n2 if n2 else 1.0
    d3 = 3 - 4 * y * n4 / n3 if n3 else 1.5
    return float(min(max(d1, 0.0), 1.0)), float(min(max(d2, 0.0), 2.0)), float(min(max(d3, 0.0), 3.0))


BASELINE_ORDERS = tuple(range(1, 8))
BASELINE_SMOOTHINGS = ("witten_bell", "kneser_ney")


def best_baseline(train_ids, streams: Sequence[Sequence[int]], vocab_size: int,
                  orders: Sequence[int] = BASELINE_ORDERS,
                  smoothings: Sequence[str] = BASELINE_SMOOTHINGS) -> dict:
    """The n-gram with the lowest perplexity on `streams`, fitted on the id stream `train_ids`.

    Each stream is scored as `token_log_probs` scores it (ids[1:] from the ids before them), so a stream that
    starts with <bos> scores the tokens after it, as a language model reading the same stream does. Orders
    whose codes would overflow int64 for `vocab_size` are skipped. Returns {"perplexity", "order",
    "smoothing", "tokens" (scored), "seconds" (fitting and scoring everything)}.
    """
    import time

    start = time.perf_counter()
    train = np.asarray(train_ids, dtype=np.int64)
    streams = [np.asarray(s, dtype=np.int64) for s in streams if len(s) >= 2]
    if not streams:
        raise InvalidInput("streams: expected at least one stream of 2 or more ids to score", field="streams")
    tokens = sum(len(s) - 1 for s in streams)
    orders = [n for n in orders if float(vocab_size) ** n < 2.0**62]
    counted = NGramModel(max(orders)).fit(train, vocab_size)  # counted once; lower orders reuse the tables
    best: dict = {}
    for order in orders:
        for smoothing in smoothings:
            model = counted.truncated(order, smoothing)
            nll = -sum(float(model.token_log_probs(s).sum()) for s in streams) / tokens
            if not best or nll < best["nll"]:
                best = {"nll": nll, "order": order, "smoothing": smoothing}
    return {"perplexity": math.exp(best["nll"]), "order": best["order"], "smoothing": best["smoothing"],
            "tokens": tokens, "seconds": time.perf_counter() - start}
