"""Token-by-token generation: sampling (greedy, temperature, top-k, top-p, repetition penalty, stop
sequences), beam search for seq2seq, and forecast rollout.

`generate(model, prompt, config, should_stop)` is an iterator of records:
- `GeneratedToken(id, text, logprob, value)` per produced token: `text` is what the token adds to the output
  (byte tokenizers may hold back an incomplete UTF-8 character until a later token), `logprob` the natural log
  of the token's probability under the model (before temperature, penalty and truncation), `value` only for
  forecasts (then `id` is the step index and `text` the value printed);
- then exactly one `GenerationEnd(finish_reason, prompt_tokens, generated_tokens, text, stop_sequence)` with
  finish_reason "length" (max_new_tokens reached), "stop" (the output contains a stop sequence, named in
  `stop_sequence`, completed by the last token, which was yielded; with word tokens the text may run past
  it) or "eos" (the model produced `<eos>`, which is not yielded).
`should_stop()` is checked before every token; when it returns True, `Cancelled` is raised.
The prompt conditions the output but is not repeated. Same seed and settings: the same tokens.

Sampled generation (language model, one_to_many, seq2seq without beam search) runs exactly as a server's
continuous batching runs one request: a `GenerationRequest` stepped through a `StepPlan`
(weights copied once per call) by its kernel policy (one row: the 1-row kernel), its tokens chosen by
`choose_rows` (row by row, so alone = batched). So a request gets the same tokens from Model.generate as from
StreamGenerate alone or in a batch below the plan's crossover (`gemv_rows`); with `deterministic=True` (the
server's --deterministic) a step is padded to `exact_min_rows(model, GENERATE_ROWS)` rows and the tokens
equal StreamGenerate's in any batch up to the server's default batch size. A token costs one step, not a
forward pass that copies every weight matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..backend import no_grad, xp
from ..config import GenerationConfig
from ..data.tokenizers import EOS_ID, StreamDecoder
from ..errors import Cancelled, FailedPrecondition, InvalidInput
from ..models.base import select_state
from ..models.predict import next_value, series_rows
from ..nn.losses import log_softmax
from ..validate import check_positive_int
from .plan import StepPlan
from .prompt import prompt_pass
from .records import GeneratedToken, GenerationEnd
from .request import GenerationRequest, can_batch
from .sampling import NEVER_SAMPLED


def generate(model, prompt, cfg: GenerationConfig, should_stop: Callable[[], bool] | None = None,
             deterministic: bool = False) -> Iterator:
    """Stream generated tokens (see the module docstring); validation happens before the first record."""
    if not isinstance(deterministic, bool):
        raise InvalidInput(f"deterministic: expected a bool, got {deterministic!r}", field="deterministic")
    if not isinstance(cfg, GenerationConfig):
        raise InvalidInput(f"config: expected a GenerationConfig, got {type(cfg).__name__}", field="config")
    cfg.validate()
    if should_stop is not None and not callable(should_stop):
        raise InvalidInput(
            f"should_stop: expected a callable or None, got {should_stop!r}", field="should_stop"
        )
    if model.task == "forecasting":
        return _rollout(model, prompt, cfg, should_stop)
    if can_batch(model, cfg):
        sampler = GenerationRequest(model, prompt, cfg, should_stop)  # validates and runs a long prompt
        return _stepped(StepPlan(model, deterministic), sampler)
    with no_grad():
        model.net.eval()
        start = prompt_pass(model, prompt, cfg)
    if model.task == "seq2seq" and cfg.beam_size > 1:
        return _beam(model, start, cfg, should_stop)
    raise FailedPrecondition(f"generate: a {model.task} model does not generate text")


def _check_stop(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("generation cancelled")


def _stepped(plan: StepPlan, sampler: GenerationRequest) -> Iterator:
    """One request alone, as the server's scheduler steps it (see the module docstring)."""
    ids = xp.empty(1, dtype=xp.int64)
    while True:
        yield from sampler.advance()  # [] while the prompt is fed; Cancelled when should_stop() says so
        if sampler.done:
            return
        ids[0] = sampler.token
        with no_grad():
            logits, (state,) = plan.run_streams(ids, [sampler.state])
        sampler.feed(logits[0], state)


def _beam(model, start, cfg: GenerationConfig, should_stop) -> Iterator:
    """Beam search (log-prob sum, ranked by mean log-prob per token); yields the best beam's tokens."""
    step, logits, state, prompt_ids = start
    W, V = cfg.beam_size, logits.shape[-1]
    beams = [(0.0, [], [])]  # (score, ids, logprobs)
    finished: list[tuple[float, list[int], list[float]]] = []
    logp = log_softmax(xp.asarray(logits, dtype=xp.float64)[None])  # (1, V)
    for _ in range(cfg.max_new_tokens):
        _check_stop(should_stop)
        logp[:, list(NEVER_SAMPLED)] = -xp.inf
        total = xp.array([b[0] for b in beams])[:, None] + logp  # (n, V)
        flat = xp.argsort(-total.reshape(-1), kind="stable")[:W]
        nxt, rows = [], []
        for f in flat:
            r, t = divmod(int(f), V)
            cand = (float(total[r, t]), beams[r][1] + [t], beams[r][2] + [float(logp[r, t])])
            if t == EOS_ID:
                finished.append(cand)
            else:
                nxt.append(cand)
                rows.append(r)
        if not nxt or len(finished) >= W:
            break
        with no_grad():
            out, state = model.net.decode(xp.asarray([[b[1][-1]] for b in nxt]), select_state(state, rows))
        logp = log_softmax(xp.asarray(out[:, -1], dtype=xp.float64))
        beams = nxt
    pool = finished or beams
    best = max(pool, key=lambda b: b[0] / max(len(b[1]), 1))
    ids, lps = best[1], best[2]
    reason = "eos" if ids and ids[-1] == EOS_ID else "length"
    if reason == "eos":
        ids, lps = ids[:-1], lps[:-1]
    decoder, text = StreamDecoder(model.tokenizer), ""
    for t, lp in zip(ids, lps, strict=True):
        piece = decoder.push(t)
        text += piece
        yield GeneratedToken(t, piece, lp)
    yield GenerationEnd(reason, len(prompt_ids), len(ids), text + decoder.flush())


def _rollout(model, prompt, cfg: GenerationConfig, should_stop) -> Iterator:
    if model.num_features != 1:
        raise InvalidInput(
            "prompt: this forecaster uses exogenous series; call Model.forecast with future_exog",
            field="prompt",
        )
    values = forecast(model, prompt, cfg.max_new_tokens)  # validates before the first record
    n = len(prompt)

    def records():
        for i, v in enumerate(values):
            _check_stop(should_stop)
            yield GeneratedToken(i, f"{v:.6g}", 0.0, v)
        yield GenerationEnd("length", n, len(values), " ".join(f"{v:.6g}" for v in values))

    return records()


def forecast(model, series, horizon: int, future_exog=None) -> list[float]:
    """Feed each prediction back as the next input; exogenous rows for the future come from future_exog."""
    if model.task != "forecasting":
        raise FailedPrecondition(f"forecast: a {model.task} model does not forecast")
    horizon = check_positive_int("horizon", horizon)
    F = model.num_features
    fut = None
    if F > 1:
        fut = xp.asarray(future_exog if future_exog is not None else [], dtype=xp.float64)
        if fut.shape != (horizon, F - 1):
            raise InvalidInput(
                f"future_exog: expected shape ({horizon}, {F - 1}), got {fut.shape}", field="future_exog"
            )
        fut = (fut - xp.asarray(model.norm["mean"][1:])) / xp.asarray(model.norm["std"][1:])
    with no_grad():
        model.net.eval()
        rows = series_rows(model, "series", series)
        out = []
        for h in range(horizon):
            v = next_value(model, rows)
            out.append(v)
            z = (v - model.norm["mean"][0]) / model.norm["std"][0]
            row = xp.concatenate([[z], fut[h] if fut is not None else []]).astype(rows.dtype)
            rows = xp.concatenate([rows, row[None]])[-model.config.window :]
    return out
