"""Generation: one package for everything that produces tokens (dependencies: nn <- models <- generation).

- records: GeneratedToken, GenerationEnd (with the stop sequence that matched);
- sampling: choose_rows, the vectorised row-wise choice of the next tokens;
- prompt: the prompt encoded in one place (ids fed step by step, or one forward pass);
- request: one request's decoding state (`GenerationRequest`, formerly `Sampler`), driven alike by
  Model.generate and the server's scheduler;
- plan: `StepPlan` (weights laid out for steps, the kernel policy, deterministic mode), `step_logits`;
- decode: `generate` (sampled, beam search, forecast rollout) and `forecast`.
"""

from .decode import forecast, generate
from .plan import (
    GENERATE_ROWS,
    MIN_ROWS,
    StepPlan,
    exact_min_rows,
    gemv_crossover,
    split_state,
    split_stream_state,
    stack_states,
    stack_stream_states,
    step_logits,
)
from .prompt import BATCHED_TASKS
from .records import GeneratedToken, GenerationEnd
from .request import PROMPT_STEPS, GenerationRequest, Sampler, advance_all, can_batch
from .sampling import NEVER_SAMPLED, choose, choose_rows

__all__ = [
    "BATCHED_TASKS", "GENERATE_ROWS", "MIN_ROWS", "NEVER_SAMPLED", "PROMPT_STEPS", "GeneratedToken",
    "GenerationEnd", "GenerationRequest", "Sampler", "StepPlan", "advance_all", "can_batch", "choose",
    "choose_rows", "exact_min_rows", "forecast", "gemv_crossover", "generate", "split_state",
    "split_stream_state", "stack_states", "stack_stream_states", "step_logits",
]
