"""Forecasting network: a window of K past (normalised) values, plus optional exogenous series, -> next value.

Input (B, K, F) with F = 1 + number of exogenous series (feature 0 is the target series); the recurrent
output at the last step goes through dropout and a Linear head to one value, (B, 1). With `residual` the head
predicts the change from the last input value (prediction = window[:, -1, 0] + head(...)), so an untrained
model starts as the naive last-value forecast and trends extrapolate.
"""

from __future__ import annotations

from typing import Any

from ..backend import xp
from ..nn.modules import Dropout, Linear
from .base import Network, State, make_rnn, rnn_backward, rnn_forward


class ForecastNet(Network):
    def __init__(
        self,
        num_features: int,
        *,
        hidden_size: int,
        num_layers: int,
        cell: str,
        dropout: float,
        init: str,
        dtype: Any,
        rng: xp.random.Generator,
        residual: bool = True,
        forget_bias: float | None = None,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.rnn = make_rnn(
            cell,
            num_features,
            hidden_size,
            num_layers,
            dropout=dropout,
            bidirectional=False,
            dtype=dtype,
            rng=rng,
            init=init,
            forget_bias=forget_bias,
        )
        self.head = Linear(hidden_size, 1, dtype=dtype, seed=rng)
        self.drop_out = Dropout(dropout, dtype=dtype, seed=rng)
        self.modules = {"rnn": self.rnn, "head": self.head, "drop_out": self.drop_out}
        self._shape = None

    def forward(self, windows, state: State | None = None):
        """windows (B, K, F) -> (prediction (B, 1), state after the window)."""
        out, new_state = rnn_forward(self.rnn, windows, state)  # (B, K, H)
        self._shape = out.shape
        pred = self.head(self.drop_out(out[:, -1]))
        if self.residual:
            pred = pred + windows[:, -1, :1]
        return pred, new_state

    def backward(self, d_pred) -> None:
        d_last = self.drop_out.backward(self.head.backward(d_pred))  # (B, H)
        d_out = xp.zeros(self._shape, dtype=d_last.dtype)
        d_out[:, -1] = d_last
        rnn_backward(self.rnn, d_out)
