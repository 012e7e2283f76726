"""rnn_engine: RNN, LSTM and GRU in pure NumPy with hand-derived backpropagation through time."""

from .backend import no_grad
from .errors import EngineError, InvalidInput
from .recurrent import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU", "no_grad", "EngineError", "InvalidInput"]
