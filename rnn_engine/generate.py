"""Compatibility: the generation API under its old path (now in `rnn_engine.generation`)."""

from .generation.decode import forecast, generate
from .generation.records import GeneratedToken, GenerationEnd
from .generation.sampling import NEVER_SAMPLED, choose, choose_rows

__all__ = ["NEVER_SAMPLED", "GeneratedToken", "GenerationEnd", "choose", "choose_rows", "forecast",
           "generate"]
