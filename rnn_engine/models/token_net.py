"""Embedding -> dropout -> recurrent stack -> dropout -> Linear head, read at every step or at the last one.

One network serves three model kinds:
- language model: logits for the next token at every step, (B, T, V);
- tagging: logits for the tag of every step, (B, T, C);
- classification: logits read at each sequence's last valid step, (B, C). For a bidirectional stack that is
  [forward output at its last valid step, backward output at step 0], i.e. the two halves of h_n.
"""

from __future__ import annotations

from typing import Any

from ..backend import xp
from ..nn.modules import Dropout, Embedding, Linear
from .base import Network, State, make_rnn, rnn_backward, rnn_forward


class TokenNet(Network):
    """Args: vocab_size V, out_size (V, or C classes), the model config's sizes, one rng for all modules."""

    def __init__(
        self,
        vocab_size: int,
        out_size: int,
        *,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int,
        cell: str,
        dropout: float,
        bidirectional: bool,
        init: str,
        dtype: Any,
        rng: xp.random.Generator,
        readout: str = "all",
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        self.readout = readout  # "all" (every step) or "last" (last valid step)
        D = 2 if bidirectional else 1
        self.embedding = Embedding(vocab_size, embedding_dim, dtype=dtype, seed=rng)
        self.rnn = make_rnn(
            cell,
            embedding_dim,
            hidden_size,
            num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            dtype=dtype,
            rng=rng,
            init=init,
            forget_bias=forget_bias,
        )
        self.head = Linear(D * hidden_size, out_size, dtype=dtype, seed=rng)
        self.drop_in = Dropout(dropout, dtype=dtype, seed=rng)
        self.drop_out = Dropout(dropout, dtype=dtype, seed=rng)
        self.modules = {
            "embedding": self.embedding,
            "rnn": self.rnn,
            "head": self.head,
            "drop_in": self.drop_in,
            "drop_out": self.drop_out,
        }
        self._last = None

    def forward(self, ids, lengths=None, state: State | None = None):
        """ids (B, T) -> (logits, new state); logits (B, T, out) or (B, out) for readout "last"."""
        x = self.drop_in(self.embedding(ids))  # (B, T, E)
        out, new_state = rnn_forward(self.rnn, x, state, lengths)  # (B, T, D*H)
        B, T, DH = out.shape
        if self.readout == "last":
            last = xp.full(B, T - 1) if lengths is None else xp.asarray(lengths) - 1
            feat = self._read_last(out, last)  # (B, D*H)
            self._last = (last, out.shape)
        else:
            feat = out
        return self.head(self.drop_out(feat)), new_state

    def _read_last(self, out, last):
        B = out.shape[0]
        H = self.rnn.hidden_size
        rows = xp.arange(B)
        if not self.rnn.bidirectional:
            return out[rows, last]
        return xp.concatenate([out[rows, last, :H], out[:, 0, H:]], axis=1)

    def backward(self, d_logits) -> None:
        """Fill every module's grads from d loss / d logits (the carried input state gets no gradient)."""
        d_feat = self.drop_out.backward(self.head.backward(d_logits))
        if self.readout == "last":
            last, shape = self._last
            B, T, DH = shape
            H = self.rnn.hidden_size
            d_out = xp.zeros(shape, dtype=d_feat.dtype)
            rows = xp.arange(B)
            if self.rnn.bidirectional:
                d_out[rows, last, :H] = d_feat[:, :H]
                d_out[:, 0, H:] = d_feat[:, H:]
            else:
                d_out[rows, last] = d_feat
        else:
            d_out = d_feat
        dx, _ = rnn_backward(self.rnn, d_out)
        self.embedding.backward(self.drop_in.backward(dx))
