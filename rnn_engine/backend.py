"""The one array namespace the engine computes with (NumPy today; a CuPy port swaps this module)."""

from __future__ import annotations

import contextlib
import contextvars

import numpy as xp

__all__ = ["xp", "no_grad", "grad_enabled", "as_generator"]

_GRAD_ENABLED = contextvars.ContextVar("rnn_engine_grad_enabled", default=True)


def grad_enabled() -> bool:
    """True unless inside a `no_grad()` block: forward passes then cache nothing for backward."""
    return _GRAD_ENABLED.get()


@contextlib.contextmanager
def no_grad():
    """Inference mode: forwards inside this block keep no cache, so `backward` is unavailable."""
    token = _GRAD_ENABLED.set(False)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)


def as_generator(seed: int | xp.random.Generator | None) -> xp.random.Generator:
    """An explicit random generator from a seed, an existing generator, or fresh entropy (None)."""
    if isinstance(seed, xp.random.Generator):
        return seed
    if seed is not None and (not isinstance(seed, int | xp.integer) or isinstance(seed, bool) or seed < 0):
        raise TypeError(f"seed: expected a non-negative int, a numpy.random.Generator or None, got {seed!r}")
    return xp.random.default_rng(seed)
