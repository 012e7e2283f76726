"""Finite-difference gradient checking shared by the engine tests (float64, central differences)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numeric_grad(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f()`` with respect to ``array``.

    ``array`` is perturbed in place, one element at a time, and restored afterwards, so ``f`` must
    read it by reference (e.g. a module parameter or an input closed over by ``f``).

    Args:
        f: zero-argument function returning a scalar (float or 0-d array).
        array: float64 array that ``f`` depends on; it is modified temporarily.
        eps: half the finite-difference step.

    Returns:
        An array shaped like ``array`` holding (f(x + eps) - f(x - eps)) / (2 eps) per element.
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
        raise ValueError(f"array: expected a float64 ndarray, got {type(array).__name__} "
                         f"{getattr(array, 'dtype', '')}")
    grad = np.zeros_like(array)
    it = np.nditer(array, flags=["multi_index"], op_flags=[["readwrite"]])
    for _ in it:
        idx = it.multi_index
        old = array[idx]
        array[idx] = old + eps
        f_plus = float(f())
        array[idx] = old - eps
        f_minus = float(f())
        array[idx] = old
        grad[idx] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = 1e-3) -> float:
    """Maximum elementwise relative error between two gradients (0 for empty arrays).

    Each element is compared as ``|a - b| / max(|a| + |b|, floor * m, 1e-300)`` where ``m`` is the
    largest ``|a| + |b|`` in the array: elements that are tiny next to the rest of the gradient (or
    exactly zero) are judged against a fraction of its scale, so finite-difference round-off on them
    (~1e-10 absolute) does not dominate, while every element of normal size is checked relatively.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"b: expected shape {a.shape}, got {b.shape}")
    if a.size == 0:
        return 0.0
    total = np.abs(a) + np.abs(b)
    denom = np.maximum(total, max(floor * float(total.max()), 1e-300))
    return float(np.max(np.abs(a - b) / denom))
