"""Weight initialisers: PyTorch's default uniform, Xavier, orthogonal and identity (IRNN)."""

from __future__ import annotations

import math

from ..backend import xp
from ..errors import InvalidInput

RECURRENT_INITS = ("default", "xavier", "orthogonal", "identity")


def uniform(rng: xp.random.Generator, shape, bound: float, dtype) -> xp.ndarray:
    """U(-bound, bound): PyTorch's default for recurrent layers with bound = 1/sqrt(hidden_size)."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_uniform(rng: xp.random.Generator, shape, dtype, gain: float = 1.0) -> xp.ndarray:
    fan_out, fan_in = shape
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(rng, shape, bound, dtype)


def orthogonal(rng: xp.random.Generator, shape, dtype, gain: float = 1.0) -> xp.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (QR of a Gaussian, sign-corrected)."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = xp.linalg.qr(a)
    q = q * xp.sign(xp.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q[:rows, :cols]).astype(dtype)


def recurrent_matrix(kind: str, rng, gates: int, hidden: int, dtype, scale: float = 1.0) -> xp.ndarray:
    """W_hh of shape (gates*H, H), one (H, H) block per gate, initialised by `kind`."""
    if kind not in RECURRENT_INITS:
        raise InvalidInput(f"init: expected one of {RECURRENT_INITS}, got {kind!r}", field="init")
    bound = 1.0 / math.sqrt(hidden)
    if kind == "default":
        return uniform(rng, (gates * hidden, hidden), bound, dtype)
    blocks = []
    for _ in range(gates):
        if kind == "xavier":
            blocks.append(xavier_uniform(rng, (hidden, hidden), dtype))
        elif kind == "orthogonal":
            blocks.append(orthogonal(rng, (hidden, hidden), dtype))
        else:  # identity: Le, Jaitly & Hinton (2015), IRNN; `scale` < 1 gives the "np-RNN" variant
            blocks.append((scale * xp.eye(hidden)).astype(dtype))
    return xp.concatenate(blocks, axis=0)
