"""One generation request as a scheduler (or Model.generate) advances it: prompt fed step by step, sampling.

A `GenerationRequest` (formerly `Sampler`) holds one request's state, logits, random generator, history,
stream decoder and text, so that a scheduler can advance many requests together through a `StepPlan`:

    r = GenerationRequest(model, prompt, cfg)  # validates; short prompts are not run yet
    while not r.done:
        records = r.advance()          # [] while the prompt is fed; then GeneratedToken, ..., GenerationEnd
        if not r.done:
            logits, (state,) = plan.run_streams(np.array([r.token]), [r.state])  # with other requests' rows
            r.feed(logits[0], state)

A prompt of up to PROMPT_STEPS tokens is fed through the same batched steps (so a new request costs one row
per prompt token and needs no pass of its own); a longer one runs in one forward pass at construction, as
Model.generate's does. Either way a request's arithmetic does not depend on the other rows of a batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..backend import no_grad, xp
from ..config import GenerationConfig
from ..data.tokenizers import BOS_ID, EOS_ID, StreamDecoder
from ..errors import Cancelled, FailedPrecondition, InvalidInput
from ..models.base import State
from .prompt import BATCHED_TASKS, prompt_feed, prompt_run
from .records import GeneratedToken, GenerationEnd
from .sampling import choose_rows

PROMPT_STEPS = 16  # prompts up to this many tokens (with <bos>) ride along in batched steps


def can_batch(model, cfg: GenerationConfig) -> bool:
    """True when `model.generate(prompt, cfg)` can run as a `GenerationRequest` (not beam search, not
    forecasting)."""
    return model.task in BATCHED_TASKS and not (model.task == "seq2seq" and cfg.beam_size > 1)


class GenerationRequest:
    """One generation request (see the module docstring); `token` is the id to feed next."""

    def __init__(self, model, prompt: Any, cfg: GenerationConfig,
                 should_stop: Callable[[], bool] | None = None) -> None:
        if not isinstance(cfg, GenerationConfig):
            raise InvalidInput(
                f"config: expected a GenerationConfig, got {type(cfg).__name__}", field="config"
            )
        cfg.validate()
        if should_stop is not None and not callable(should_stop):
            raise InvalidInput(
                f"should_stop: expected a callable or None, got {should_stop!r}", field="should_stop"
            )
        if not can_batch(model, cfg):
            raise FailedPrecondition(f"GenerationRequest: a {model.task} model with beam_size="
                                     f"{cfg.beam_size} cannot be batched; use Model.generate")
        self.model, self.cfg, self.should_stop = model, cfg, should_stop
        with no_grad():
            model.net.eval()
            feed, self.state, prompt_ids = prompt_feed(model, prompt, cfg)
            self.logits = None
            if len(feed) > PROMPT_STEPS:  # one forward pass over the whole prompt, as Model.generate
                self.logits, self.state = prompt_run(model, feed, self.state)
                feed = []
        self._feed = deque(feed)
        self.token = self._feed.popleft() if self._feed else -1
        self.prompt_tokens = len(prompt_ids)
        self.rng = xp.random.default_rng(cfg.seed)
        previous = prompt_ids[-1] if len(prompt_ids) > 1 else None
        self.decoder = StreamDecoder(model.tokenizer, previous=previous)
        self.history = [i for i in prompt_ids if i != BOS_ID] if model.task != "seq2seq" else []
        self.text, self.count, self.done = "", 0, False

    @property
    def prefilling(self) -> bool:
        """True while prompt tokens are still being fed (no logits to sample from yet)."""
        return self.logits is None

    def advance(self) -> list:
        """Records of this step: [] while the prompt is fed, else those of the next token (raises Cancelled
        when should_stop() says so)."""
        (out,) = advance_all([self])
        if isinstance(out, BaseException):
            raise out
        return out

    def _before_token(self) -> list | BaseException | None:
        """Records or an exception that replace this step's token (prompt, length, cancel), else None."""
        if self.prefilling:
            if self.should_stop is not None and self.should_stop():
                self.done = True
                return Cancelled("generation cancelled")
            return []
        if self.count >= self.cfg.max_new_tokens:
            return self._end("length")
        if self.should_stop is not None and self.should_stop():
            self.done = True
            return Cancelled("generation cancelled")
        return None

    def _take(self, token: int, logprob: float) -> list:
        """The records of `token` (chosen from `self.logits`)."""
        if token == EOS_ID:
            return self._end("eos")
        piece = self.decoder.push(token)
        self.text += piece
        self.count += 1
        self.history.append(token)
        records: list = [GeneratedToken(token, piece, logprob)]
        hit = next((s for s in self.cfg.stop if s in self.text[-(len(s) + len(piece)):]), None)
        if hit is not None:  # the stop sequence this token completed (it may end inside the token)
            return records + self._end("stop", hit)
        if self.count >= self.cfg.max_new_tokens:
            return records + self._end("length")
        self.token = token
        return records

    def feed(self, logits_row, state_row: State) -> None:
        """The step result of this request's `token`: logits (V,) and its single-row state."""
        self.state = state_row
        if self._feed:
            self.token = self._feed.popleft()
        else:
            self.logits = logits_row

    def _end(self, reason: str, stop_sequence: str = "") -> list:
        self.done = True
        tail = self.decoder.flush()
        return [GenerationEnd(reason, self.prompt_tokens, self.count, self.text + tail, stop_sequence)]


def advance_all(samplers: list[GenerationRequest]) -> list[list | BaseException]:
    """`advance()` of several requests at once: per sampler its records, or the exception it would raise
    (Cancelled, or a failure of its own). The tokens are chosen in one `generate.choose_rows` pass over the
    requests' logits, row by row, so each request gets the tokens it gets alone."""
    out: list = [None] * len(samplers)
    picking = []
    for i, s in enumerate(samplers):
        if s.done:
            out[i] = FailedPrecondition("advance: the generation has finished")
            continue
        try:
            out[i] = s._before_token()
        except Exception as exc:  # noqa: BLE001 - a failing should_stop ends that request only
            out[i] = exc
        if out[i] is None:
            picking.append(i)
    if picking:
        chosen = [samplers[i] for i in picking]
        try:
            ids, logprobs = choose_rows(xp.stack([s.logits for s in chosen]), [s.cfg for s in chosen],
                                        [s.history for s in chosen], [s.rng for s in chosen])
        except Exception:  # noqa: BLE001 - one bad row (non-finite logits) must not end the others
            for i in picking:
                out[i] = _alone(samplers[i])
            return out
        for i, s, token, logprob in zip(picking, chosen, ids, logprobs, strict=True):
            out[i] = s._take(token, logprob)
    return out


def _alone(s: GenerationRequest) -> list | BaseException:
    try:
        (token,), (logprob,) = choose_rows(s.logits[None], [s.cfg], [s.history], [s.rng])
        return s._take(token, logprob)
    except Exception as exc:  # noqa: BLE001
        s.done = True
        return exc


Sampler = GenerationRequest  # its former name (rnn_engine.batched_sampler.Sampler)
