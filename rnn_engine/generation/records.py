"""The records a generation yields: GeneratedToken per token, then one GenerationEnd (see decode.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GeneratedToken:
    id: int  # token id (forecasts: the step index)
    text: str  # text this token adds
    logprob: float  # log p(token | context) under the model
    value: float | None = None  # forecasts only: the predicted value


@dataclass(frozen=True)
class GenerationEnd:
    finish_reason: str  # "length" | "stop" | "eos"
    prompt_tokens: int  # tokens (or values) read from the prompt
    generated_tokens: int  # GeneratedToken records yielded
    text: str  # the whole generated text
    stop_sequence: str = ""  # finish_reason "stop": the stop sequence that matched
