"""Sequence kernels: one direction of one recurrent layer over a whole sequence, forward and hand-derived
BPTT side by side, one module per kind (`rnn`, `lstm`, `gru`: row layout; `columns`: the column layout of the
LSTM, training and inference, and of the GRU, inference), shared pieces in `common`. The old module
`rnn_engine.cells` is this package (`rnn_engine.MOVED`).

Conventions shared by every kind (G gate blocks of H units; B sequences; T steps):
- Cells work in *processing order*: step p = 0..T-1 reads the state written by step p-1. The reverse
  direction is run by handing in time-reversed views (`xw[::-1]`, `mask[::-1]`, `d_out[::-1]`), so no
  cell knows about directions.
- Sigmoid is computed through tanh, s(a) = (1 + tanh(a / 2)) / 2, so one `tanh` call covers a step's whole
  gate block. The halving is folded into the weights once per forward call (`gate_scale`): the forward
  takes `xw` (T, B, G*H) = scale * (x W_ih^T + b) and `Wt` (H, G*H) = (scale * W_hh)^T, contiguous
  (short calls pass the unscaled transposed view and `hw_scale`, applied to each step's product).
- The forward writes the gate activations over `xw` in place (the caller hands over a fresh array) and
  returns the carried states `hs` (T, B, H) (hs[p] is the state after step p) and the output, which is `hs`
  itself unless a step mask (T, B, 1) marks padding (then padded steps output zeros and keep the state).
- `keep=False` (inference, `no_grad`) returns no cache; with `keep=True` the cache holds exactly what the
  backward reads (see each `*Cache`). The backward takes the unscaled W_hh (G*H, H), returns the gradient
  of the input pre-activations `dxw` (T, B, G*H) in processing order, of the initial state(s), and of
  W_hh / b_hh, computed as one product over all steps after the loop.
"""

from .columns import (
    LSTMColumnsCache,
    gru_forward_columns,
    lstm_backward_columns,
    lstm_cell_columns,
    lstm_forward_columns,
)
from .common import ACTIVATIONS, gate_scale
from .gru import GRUCache, gru_backward, gru_cell, gru_forward
from .lstm import LSTMCache, lstm_backward, lstm_cell, lstm_forward
from .rnn import RNNCache, rnn_backward, rnn_cell, rnn_forward

__all__ = [
    "ACTIVATIONS", "GRUCache", "LSTMCache", "LSTMColumnsCache", "RNNCache", "gate_scale", "gru_backward",
    "gru_cell", "gru_forward", "gru_forward_columns", "lstm_backward", "lstm_backward_columns", "lstm_cell",
    "lstm_cell_columns", "lstm_forward", "lstm_forward_columns", "rnn_backward", "rnn_cell", "rnn_forward",
]
