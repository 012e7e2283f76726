"""Compatibility: one request's decoding state under its old path (now `rnn_engine.generation.request`)."""

from .generation.prompt import BATCHED_TASKS
from .generation.request import PROMPT_STEPS, Sampler, advance_all, can_batch

__all__ = ["BATCHED_TASKS", "PROMPT_STEPS", "Sampler", "advance_all", "can_batch"]
