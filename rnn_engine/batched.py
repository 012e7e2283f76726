"""Compatibility: the batched step under its old path (now `rnn_engine.generation.plan`)."""

from .generation.plan import (
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

__all__ = ["GENERATE_ROWS", "MIN_ROWS", "StepPlan", "exact_min_rows", "gemv_crossover", "split_state",
           "split_stream_state", "stack_states", "stack_stream_states", "step_logits"]
