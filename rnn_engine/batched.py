"""Batched single-step decoding for serving: one step of many independent generations at once.

A server steps every running generation together (continuous batching): each request keeps its own state,
sampling settings and random generator in a `batched_sampler.Sampler`, and `step_logits` advances all of them
by one token through a `StepPlan`: the model's weights copied once, contiguous with the gate scale folded in
(the recurrent layers' `step_weights()`), the first layer's input product replaced by a lookup table of every
token's projection, so a step is one recurrent product per layer, one input product per layer above the first
and the output product. Model.generate runs the same `Sampler` and step for one request alone, so a request
gets Model.generate's tokens.

What is exact is that a request produces the same tokens whether it runs alone or among others, provided the
batched step computes each row independently of the others. BLAS does so for a fixed number of rows M (a row's
result does not depend on its position or on the other rows), but may round differently for different M when
M is small: gemv for M == 1, and small-matrix kernels below a shape-dependent size. `exact_min_rows(model,
max_rows)` finds, once per network shape, the smallest M0 such that every M in [M0, max_rows] gives the same
rows, and `step_logits` pads smaller batches to M0 rows (repeating the last row), so a stream gets the same
logits alone or in any batch up to max_rows. The small output product (M x H x V up to about 1e6 runs
OpenBLAS's small-matrix kernel) is padded on its own to the rows from which it rounds alike, so that this one
product does not force every step to its larger row count.
Model.generate runs each request this way alone, with max_rows = GENERATE_ROWS (the server's default
`--batch-max-size`), so it gives the server's tokens too.

States are the networks' `(h, c)` pairs, h (L, B, H) (c None unless LSTM): `stack_states` joins the rows of
several, `split_state` takes them apart again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .backend import no_grad, xp
from .batched_sampler import BATCHED_TASKS
from .errors import FailedPrecondition, InvalidInput
from .models.base import State

MIN_ROWS = 2  # a product of one row would take BLAS's gemv path and round differently
GENERATE_ROWS = 64  # max_rows of Model.generate's padding: the server's default batch size
_EXACT_ROWS: dict[tuple, int] = {}  # network shape -> M0 (see exact_min_rows)


def stack_states(states: Sequence[State]) -> State:
    """Join single- or multi-row states along the batch axis: h (L, sum B_i, H)."""
    if not states:
        raise InvalidInput("states: expected at least one state, got none")
    h = xp.concatenate([s[0] for s in states], axis=1)
    if any((s[1] is None) != (states[0][1] is None) for s in states):
        raise InvalidInput("states: expected states of one cell kind, got LSTM and non-LSTM states mixed")
    c = None if states[0][1] is None else xp.concatenate([s[1] for s in states], axis=1)
    return h, c


def split_state(state: State) -> list[State]:
    """One single-row state (h (L, 1, H), c) per batch row of `state` (views, no copies)."""
    h, c = state
    return [(h[:, b : b + 1], None if c is None else c[:, b : b + 1]) for b in range(h.shape[1])]


class StepPlan:
    """What `step_logits` reads of a model, laid out once for many steps: the recurrent layers'
    `step_weights()`, the first layer's input projection of every token as a lookup table (V, G), and the
    output layer's W^T contiguous. Copies: build a new plan after the model's parameters change.
    A scheduler keeps one per loaded model; Model.generate builds one per call.
    """

    def __init__(self, model) -> None:
        if model.task not in BATCHED_TASKS:
            raise FailedPrecondition(f"StepPlan: a {model.task} model does not generate tokens")
        net = model.net
        decoder = model.task != "language_model"
        self.model = model
        self.rnn = net.decoder if decoder else net.rnn
        embedding = net.dec_embedding if decoder else net.embedding
        self.weights = self.rnn.step_weights()
        self.table = self.weights.input_table(embedding.params["weight"])  # (V, G)
        head = net.head.params
        self.head_t = xp.array(head["weight"].T, order="C")  # (H, V), a copy
        self.head_b = None if head.get("bias") is None else head["bias"].copy()
        self.head_rows = _exact_product_rows(self.head_t, GENERATE_ROWS)

    def step(self, ids, state: State) -> tuple[Any, State]:
        """ids (B,) -> logits (B, V), new state; no validation (see step_logits)."""
        self.model.net.eval()  # dropout off: the plan holds no dropout
        if state[1] is not None:
            y, (h, c) = self.rnn.step(None, state, self.weights, self.table[ids])
        else:
            y, h = self.rnn.step(None, state[0], self.weights, self.table[ids])
            c = None
        B = y.shape[0]
        if B < self.head_rows:  # the small output product rounds alike only from head_rows rows
            y = xp.concatenate([y, xp.repeat(y[-1:], self.head_rows - B, axis=0)])
        logits = (y @ self.head_t)[:B]
        if self.head_b is not None:
            logits += self.head_b
        return logits, (h, c)


def _exact_product_rows(W, max_rows: int) -> int:
    """Smallest M0 >= MIN_ROWS such that the rows of X @ W for M0..max_rows rows of X are bit-identical,
    probed once per shape of W (OpenBLAS rounds small products, M*N*K up to about 1e6, differently)."""
    key = ("product", W.shape, str(W.dtype), max_rows)
    if key not in _EXACT_ROWS:
        X = xp.random.default_rng(0).standard_normal((max_rows, W.shape[0])).astype(W.dtype)
        ref, m0 = X @ W, MIN_ROWS
        for m in range(max_rows - 1, MIN_ROWS - 1, -1):
            if not xp.array_equal(X[:m] @ W, ref[:m]):
                m0 = m + 1
                break
        _EXACT_ROWS[key] = m0
    return _EXACT_ROWS[key]


def step_logits(model, token_ids, state: State, min_rows: int = MIN_ROWS,
                plan: StepPlan | None = None) -> tuple[Any, State]:
    """Feed one token to each of B streams: token_ids (B,) and state (L, B, H) -> logits (B, V), new state.

    Batches smaller than `min_rows` are padded (use `exact_min_rows`); then row b of the result depends only
    on row b of the inputs, so a stream gets the same logits alone or in any batch. `plan`: a `StepPlan` of
    this model to reuse (without one, each call builds its own: a copy of every weight).
    """
    if model.task not in BATCHED_TASKS:
        raise FailedPrecondition(f"step_logits: a {model.task} model does not generate tokens")
    ids = xp.asarray(token_ids)
    if ids.ndim != 1 or ids.size == 0 or not xp.issubdtype(ids.dtype, xp.integer):
        raise InvalidInput(f"token_ids: expected a non-empty (B,) integer array, got shape {ids.shape} "
                           f"dtype {ids.dtype}")
    V = model.tokenizer.vocab_size
    if ids.min() < 0 or ids.max() >= V:
        raise InvalidInput(f"token_ids: expected ids in [0, {V}), got {ids.min()}..{ids.max()}")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidInput(f"min_rows: expected an int >= 1, got {min_rows!r}")
    if plan is not None and (not isinstance(plan, StepPlan) or plan.model is not model):
        raise InvalidInput(f"plan: expected a StepPlan of this model, got {type(plan).__name__}"
                           f"{' of another model' if isinstance(plan, StepPlan) else ''}")
    h, c = state
    B = ids.shape[0]
    if h.ndim != 3 or h.shape[1] != B or (c is not None and c.shape != h.shape):
        raise InvalidInput(f"state: expected (L, {B}, H) arrays, got {h.shape} and "
                           f"{None if c is None else c.shape}")
    pad = max(0, min_rows - B)
    if pad:
        ids = xp.concatenate([ids, xp.repeat(ids[-1:], pad)])
        h = xp.concatenate([h, xp.repeat(h[:, -1:], pad, axis=1)], axis=1)
        c = None if c is None else xp.concatenate([c, xp.repeat(c[:, -1:], pad, axis=1)], axis=1)
    with no_grad():
        out, (h, c) = (plan or StepPlan(model)).step(ids, (h, c))
    if pad:
        out, h, c = out[:B], h[:, :B], None if c is None else c[:, :B]
    return out, (h, c)


def _shape_key(model) -> tuple:
    return (model.task, type(model.net).__name__,
            tuple(sorted((k, tuple(p.shape), str(p.dtype)) for k, p in model.params.items())))


def exact_min_rows(model, max_rows: int, path: str = "step") -> int:
    """Smallest M0 >= MIN_ROWS such that batches of M0..max_rows rows give bit-identical rows (see module
    docstring), probed once per network shape with random inputs (max_rows one-step passes), then cached.

    path "step": the products of `step_logits` (generation). path "forward": those of the networks' forward
    pass (`Model.predict` / `predict_chunk`); padding a Predict batch to M0 rows makes every recurrent product
    (M = B >= M0) round the same way batched or not. Forecasters (value inputs) are not probed: MIN_ROWS.
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise InvalidInput(f"max_rows: expected an int >= 1, got {max_rows!r}")
    if path not in ("step", "forward"):
        raise InvalidInput(f"path: expected 'step' or 'forward', got {path!r}")
    if model.task == "forecasting" or (path == "step" and model.task not in BATCHED_TASKS):
        return MIN_ROWS
    key = (_shape_key(model), max_rows, path)
    if key not in _EXACT_ROWS:
        _EXACT_ROWS[key] = _probe_min_rows(model, max(max_rows, MIN_ROWS), path == "step")
    return _EXACT_ROWS[key]


def _probe_min_rows(model, n: int, generating: bool) -> int:
    net = model.net
    decoder = model.task in ("one_to_many", "seq2seq")
    rnn = net.decoder if decoder else net.rnn
    rng = xp.random.default_rng(0)
    shape = (rnn.num_layers * rnn.num_directions, n, rnn.hidden_size)
    h = rng.standard_normal(shape).astype(rnn.dtype)
    c = rng.standard_normal(shape).astype(rnn.dtype) if rnn.mode == "LSTM" else None
    ids = rng.integers(0, model.tokenizer.vocab_size, size=(n, 1))

    plan = StepPlan(model) if generating else None

    def run(m):
        state = (h[:, :m], None if c is None else c[:, :m])
        with no_grad():
            net.eval()
            if generating:  # the products of step_logits ...
                out, (hm, _) = plan.step(ids[:m, 0], state)
            elif decoder:  # ... or of a one-step forward pass
                out, (hm, _) = net.decode(ids[:m], state)
            else:
                out, (hm, _) = net.forward(ids[:m], None, state)
        return out, hm

    ref, ref_h = run(n)

    def same(m: int) -> bool:
        out, hm = run(m)
        return bool(xp.array_equal(out, ref[:m]) and xp.array_equal(hm, ref_h[:, :m]))

    for m in range(n - 1, MIN_ROWS - 1, -1):  # every size, largest first: kernels switch below some size
        if not same(m):
            return m + 1
    return MIN_ROWS


def stack_stream_states(states: Sequence[dict]) -> dict:
    """Join `Model.initial_state` / `predict_chunk` states of one model into one state of all streams."""
    if not states or not all(isinstance(s, dict) and "batch" in s and "rnn" in s for s in states):
        raise InvalidInput("states: expected a non-empty list of Model.initial_state() states")
    if len({s["task"] for s in states}) != 1:
        raise InvalidInput("states: expected states of one model, got several tasks")
    out = {k: v for k, v in states[0].items() if k not in ("batch", "rnn")}
    out["batch"] = sum(s["batch"] for s in states)
    out["rnn"] = stack_states([s["rnn"] for s in states])
    for key, value in states[0].items():
        if isinstance(value, list):
            out[key] = [x for s in states for x in s[key]]
    return out


def split_stream_state(state: dict) -> list[dict]:
    """One single-stream state per stream of `state` (the inverse of `stack_stream_states`)."""
    if not isinstance(state, dict) or "batch" not in state or "rnn" not in state:
        raise InvalidInput("state: expected a Model.initial_state() state")
    rnn = split_state(state["rnn"])
    parts = []
    for b in range(state["batch"]):
        part = {k: (v[b : b + 1] if isinstance(v, list) else v) for k, v in state.items()}
        part["batch"], part["rnn"] = 1, rnn[b]
        parts.append(part)
    return parts
