"""Pieces every sequence kernel shares: the gate activations per kind, the sigmoid-through-tanh scale,
the masked carry of padded steps, the recurrent weight gradient, and the blocked scaled transpose the
layers lay their weights out with (conventions: `rnn_engine.nn.kernels`)."""

from __future__ import annotations

from ...backend import xp

ACTIVATIONS = {"RNN_TANH": "t", "RNN_RELU": "r", "LSTM": "ssts", "GRU": "sst"}  # s: sigmoid, t: tanh, r: relu


def gate_scale(mode: str, H: int, dtype) -> xp.ndarray:
    """(G*H,) factors folded into W_ih, W_hh and the biases: 1/2 on sigmoid gates (tanh(a/2)), else 1."""
    return xp.concatenate([xp.full(H, 0.5 if k == "s" else 1.0, dtype=dtype) for k in ACTIVATIONS[mode]])


def _sigmoid_from_tanh(block):
    """In place: tanh(a/2) -> s(a) = tanh(a/2) / 2 + 1/2."""
    block *= 0.5
    block += 0.5


def _masked_carry(m, new, old):
    """In place on `new`: the carried state is `new` on real steps (m = 1), `old` on padding (m = 0)."""
    new -= old
    new *= m
    new += old


def _recurrent_weight_grad(dpre, h0, hs):
    """sum_p dpre[p]^T h_{p-1} (G, H) with h_{-1} = h0: one product over all steps but the first."""
    T, B, G = dpre.shape
    dW = dpre[0].T @ h0
    if T > 1:
        dW += dpre[1:].reshape((T - 1) * B, G).T @ hs[:-1].reshape((T - 1) * B, -1)
    return dW


def _scaled_transpose(W, scale, rows: int = 128):
    """(scale[:, None] * W)^T as a new C-contiguous (H, G) array, copied in blocks of `rows` rows.

    A plain transposing copy of a (2048, 512) matrix walks memory with a large stride and takes about twice
    as long as this blocked copy, whose blocks stay in cache.
    """
    G, H = W.shape
    out = xp.empty((H, G), dtype=W.dtype)
    for i in range(0, G, rows):
        xp.multiply(W[i : i + rows].T, scale[i : i + rows], out=out[:, i : i + rows])
    return out

