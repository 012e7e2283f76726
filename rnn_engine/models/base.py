"""What every network shares: the recurrent stack by cell name, flattened params/grads, modes and states.

A network is a few named modules (`embedding`, `rnn`, `head`, ...). Its parameters are exposed flattened with
dotted prefixes, as PyTorch's `state_dict()` names them (`rnn.weight_ih_l0`), and the arrays are the modules'
own, so an optimizer updating `net.params` in place updates the modules.

A recurrent state is a pair `(h, c)`: h (L*D, B, H); c the LSTM cell state of the same shape, or None.
"""

from __future__ import annotations

from typing import Any

from ..backend import xp
from ..errors import InvalidInput
from ..nn.modules import Module
from ..nn.recurrent import GRU, LSTM, RNN, RecurrentBase

State = tuple[Any, Any]  # (h, c): (L*D, B, H) each; c is None unless the cell is an LSTM


def make_rnn(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    *,
    dropout: float,
    bidirectional: bool,
    dtype: Any,
    rng: xp.random.Generator,
    init: str,
    forget_bias: float | None = None,
) -> RecurrentBase:
    """A batch-first recurrent stack of the named cell ("lstm", "gru", "rnn_tanh", "rnn_relu");
    `forget_bias` (LSTM only) sets the forget gate's initial bias."""
    kw = dict(
        num_layers=num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        dtype=dtype,
        seed=rng,
        init=init,
    )
    if cell == "lstm":
        return LSTM(input_size, hidden_size, forget_bias=forget_bias, **kw)
    if cell == "gru":
        return GRU(input_size, hidden_size, **kw)
    if cell in ("rnn_tanh", "rnn_relu"):
        return RNN(input_size, hidden_size, nonlinearity=cell[4:], **kw)
    raise InvalidInput(
        f"cell: expected one of ['lstm', 'gru', 'rnn_tanh', 'rnn_relu'], got {cell!r}",
        field="cell",
    )


def rnn_forward(rnn: RecurrentBase, x, state: State | None, lengths=None):
    """(B, T, I) -> output (B, T, D*H), new state (h_n, c_n)."""
    if isinstance(rnn, LSTM):
        out, (h, c) = rnn(x, None if state is None else state, lengths)
        return out, (h, c)
    out, h = rnn(x, None if state is None else state[0], lengths)
    return out, (h, None)


def rnn_backward(rnn: RecurrentBase, d_out, d_state: State | None = None):
    """BPTT through the last forward: returns dx (B, T, I) and (dh0, dc0) (dc0 None unless LSTM)."""
    dh, dc = (None, None) if d_state is None else d_state
    if isinstance(rnn, LSTM):
        dx, (dh0, dc0) = rnn.backward(d_out, dh, dc)
        return dx, (dh0, dc0)
    dx, dh0 = rnn.backward(d_out, dh)
    return dx, (dh0, None)


def zero_state(rnn: RecurrentBase, batch: int) -> State:
    shape = (rnn.num_layers * rnn.num_directions, batch, rnn.hidden_size)
    h = xp.zeros(shape, dtype=rnn.dtype)
    return h, (xp.zeros_like(h) if isinstance(rnn, LSTM) else None)


def detach(state: State | None) -> State | None:
    """A copy of a state that later in-place work cannot alias (truncated BPTT carries it across windows)."""
    if state is None:
        return None
    return state[0].copy(), None if state[1] is None else state[1].copy()


def select_state(state: State, rows) -> State:
    """The state of some batch rows (beam search reorders them)."""
    return state[0][:, rows], None if state[1] is None else state[1][:, rows]


class Network(Module):
    """Base of every model kind's network: subclasses fill `self.modules` (name -> module) in order. Its
    `params` are the modules' own arrays under dotted names (`Module` gives train/eval, state dicts)."""

    def __init__(self) -> None:  # a composite: no dtype or parameters of its own (not Module.__init__)
        self.training = True
        self.modules: dict[str, Any] = {}

    @property
    def params(self) -> dict[str, xp.ndarray]:
        return {f"{m}.{k}": p for m, mod in self.modules.items() for k, p in mod.params.items()}

    def children(self) -> dict[str, Module]:
        return self.modules

    def grads(self) -> dict[str, xp.ndarray]:
        """Gradients of the last backward, flattened like `params` (fresh dict; backward replaces arrays)."""
        return {f"{m}.{k}": g for m, mod in self.modules.items() for k, g in mod.grads.items()}

    def freeze(self, frozen: bool = True) -> Network:
        """`freeze()` (or `unfreeze()` with False) every recurrent layer: inference keeps its weight copies
        (`RecurrentBase.freeze`); for serving a model whose parameters no longer change."""
        for mod in self.modules.values():
            if hasattr(mod, "freeze") and frozen:
                mod.freeze()
            elif hasattr(mod, "unfreeze"):
                mod.unfreeze()
        return self

    def load_arrays(self, arrays: dict[str, Any]) -> None:
        """Load flattened arrays (every name, shape and dtype checked first; nothing changes on error)."""
        params = self.params
        missing = sorted(set(params) - set(arrays))
        extra = sorted(set(arrays) - set(params))
        if missing or extra:
            raise InvalidInput(
                f"weights: missing arrays {missing}, unexpected arrays {extra}",
                field="weights",
            )
        for name, p in params.items():
            a = xp.asarray(arrays[name])
            if a.shape != p.shape or a.dtype != p.dtype:
                raise InvalidInput(
                    f"weights[{name!r}]: expected {p.dtype} {p.shape}, got {a.dtype} {a.shape}",
                    field=f"weights[{name!r}]"
                )
            if not xp.isfinite(a).all():
                raise InvalidInput(f"weights[{name!r}]: contains NaN or Inf", field=f"weights[{name!r}]")
        for name, p in params.items():
            p[...] = arrays[name]
        self._parameters_changed()  # frozen layers copy the new weights
