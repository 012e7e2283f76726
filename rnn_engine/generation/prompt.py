"""The prompt of a generation, encoded in one place: the ids a request feeds step by step, or one forward
pass over the whole prompt (long prompts, beam search)."""

from __future__ import annotations

from typing import Any

from ..backend import xp
from ..config import GenerationConfig
from ..data.tokenizers import BOS_ID
from ..errors import FailedPrecondition, InvalidInput
from ..models.base import State, zero_state

BATCHED_TASKS = ("language_model", "one_to_many", "seq2seq")  # tasks whose requests step token by token


def prompt_feed(model, prompt: Any, cfg: GenerationConfig) -> tuple[list[int], State, list[int]]:
    """(ids to feed, state before them, prompt ids as generate counts them) per task."""
    if model.task not in BATCHED_TASKS:
        raise FailedPrecondition(f"generate: a {model.task} model does not generate text")
    net = model.net
    if model.task == "language_model":
        ids = [BOS_ID] + model.encode_text("prompt", prompt, allow_empty=True)
        return ids, zero_state(net.rnn, 1), ids
    if model.task == "one_to_many":
        if cfg.label is None:
            raise InvalidInput(
                "label: a one_to_many model needs GenerationConfig.label, got None", field="label"
            )
        lid = model.label_id("label", cfg.label)
        ids = [BOS_ID] + model.encode_text("prompt", prompt, allow_empty=True)
        return ids, net.initial_state([lid]), ids
    src = model.encode_text("prompt", prompt)
    return [BOS_ID], net.encode(xp.asarray([src])), src


def prompt_run(model, feed: list[int], state: State) -> tuple[Any, State]:
    """The logits after the last of `feed` (V,) and the state, from one forward pass from `state`."""
    net = model.net
    if model.task == "language_model":
        logits, state = net.forward(xp.asarray([feed]), None, state)
    else:
        logits, state = net.decode(xp.asarray([feed]), state)
    return logits[0, -1], state


def prompt_pass(model, prompt, cfg: GenerationConfig):
    """(step function, first logits, state, prompt ids) for the token-generating tasks."""
    feed, state, ids = prompt_feed(model, prompt, cfg)
    logits, state = prompt_run(model, feed, state)
    net = model.net
    if model.task == "language_model":
        return (lambda t, s: net.forward(xp.asarray([[t]]), None, s)), logits, state, ids
    return (lambda t, s: net.decode(xp.asarray([[t]]), s)), logits, state, ids
