"""Shared builders for the recurrent-layer tests: engine layers by kind, and the same run through PyTorch.

`run_engine` and `run_torch` take the same inputs and upstream gradients and return the same dict of NumPy
arrays (output, h_n, c_n, dx, dh0, dc0 and every parameter gradient under PyTorch's names), so a test can
compare the two key by key. Torch is imported lazily: modules that only use the engine side never need it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnn_engine.nn import recurrent
from rnn_engine.nn.kernels import columns
from rnn_engine.nn.recurrent import GRU, LSTM, RNN, RecurrentBase

KINDS = ("tanh", "relu", "lstm", "gru")
# (kind, layout) pairs: every kind in the row layout, the LSTM also in its column-layout training path
KIND_LAYOUTS = [(k, "rows") for k in KINDS] + [("lstm", "columns")]


def force_lstm_columns(monkeypatch) -> None:
    """Make every LSTM call take the column-layout path (`_lstm_columns_apply`), at the tests' small sizes.

    That path normally needs B >= columns.MIN_BATCH and T*B >= COPY_MIN_ROWS; the grids run at B = 2-3.
    """
    monkeypatch.setattr(columns, "MIN_BATCH", 1)
    monkeypatch.setattr(recurrent, "COPY_MIN_ROWS", 1)


def make_engine(kind: str, input_size: int, hidden_size: int, **kwargs: Any) -> RecurrentBase:
    """An engine layer of `kind` ("tanh", "relu", "lstm", "gru"); kwargs go to the constructor."""
    if kind == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if kind == "gru":
        return GRU(input_size, hidden_size, **kwargs)
    return RNN(input_size, hidden_size, nonlinearity=kind, **kwargs)


def make_torch_twin(m: RecurrentBase, kind: str):
    """A torch.nn.RNN/LSTM/GRU with the same configuration and the engine layer's weights."""
    import torch

    dtype = torch.float64 if m.dtype == np.float64 else torch.float32
    kw = dict(num_layers=m.num_layers, bias=m.bias, batch_first=m.batch_first,
              bidirectional=m.bidirectional, dtype=dtype)
    if kind == "lstm":
        tm = torch.nn.LSTM(m.input_size, m.hidden_size, **kw)
    elif kind == "gru":
        tm = torch.nn.GRU(m.input_size, m.hidden_size, **kw)
    else:
        tm = torch.nn.RNN(m.input_size, m.hidden_size, nonlinearity=kind, **kw)
    tm.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    return tm


def upstream_grads(m: RecurrentBase, out_shape: tuple[int, ...], batch: int, rng: np.random.Generator):
    """Random cotangents (d_output, d_h_n, d_c_n) in the layer's dtype: a random linear functional."""
    state = (m.num_layers * m.num_directions, batch, m.hidden_size)
    return tuple(rng.standard_normal(s).astype(m.dtype) for s in (out_shape, state, state))


def run_engine(m: RecurrentBase, kind: str, x, h0=None, c0=None, lengths=None, cotangents=None) -> dict:
    """Forward (and backward when `cotangents` is given) through the engine layer."""
    if kind == "lstm":
        hx = None if h0 is None else (h0, c0)
        out, (h_n, c_n) = m(x, hx, lengths=lengths)
    else:
        out, h_n = m(x, h0, lengths=lengths)
        c_n = None
    res = {"output": out, "h_n": h_n, "c_n": c_n}
    if cotangents is not None:
        go, gh, gc = cotangents
        if kind == "lstm":
            dx, (dh0, dc0) = m.backward(go, gh, gc)
        else:
            (dx, dh0), dc0 = m.backward(go, gh), None
        res.update(dx=dx, dh0=dh0, dc0=dc0, grads={k: g.copy() for k, g in m.grads.items()})
    return res


def run_torch(tm, kind: str, x, h0=None, c0=None, lengths=None, cotangents=None) -> dict:
    """The same forward/backward through PyTorch; lengths go through pack_padded_sequence, unsorted."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    bf = tm.batch_first
    xt = torch.tensor(x, requires_grad=True)
    h0t = None if h0 is None else torch.tensor(h0, requires_grad=True)
    c0t = None if c0 is None else torch.tensor(c0, requires_grad=True)
    inp = xt
    if lengths is not None:
        lens = torch.as_tensor(np.asarray(lengths))
        inp = pack_padded_sequence(xt, lens, batch_first=bf, enforce_sorted=False)
    if kind == "lstm":
        out, (h_n, c_n) = tm(inp, None if h0t is None else (h0t, c0t))
    else:
        (out, h_n), c_n = tm(inp, h0t), None
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=bf, total_length=x.shape[1 if bf else 0])
    res = {"output": out.detach().numpy(), "h_n": h_n.detach().numpy(),
           "c_n": None if c_n is None else c_n.detach().numpy()}
    if cotangents is not None:
        go, gh, gc = (torch.tensor(a) for a in cotangents)
        loss = (out * go).sum() + (h_n * gh).sum()
        if c_n is not None:
            loss = loss + (c_n * gc).sum()
        tm.zero_grad()
        loss.backward()
        res.update(
            dx=xt.grad.numpy(),
            dh0=None if h0t is None else h0t.grad.numpy(),
            dc0=None if c0t is None else c0t.grad.numpy(),
            grads={k: p.grad.numpy().copy() for k, p in tm.named_parameters()},
        )
    return res


def max_abs_diff(engine: dict, reference: dict, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """Largest absolute difference per compared key (parameter gradients as `grad:<name>`)."""
    diffs: dict[str, float] = {}
    for key, ref in reference.items():
        if key in skip or ref is None:
            continue
        if key == "grads":
            assert engine["grads"].keys() == ref.keys()
            for name, g in ref.items():
                assert engine["grads"][name].shape == g.shape, name
                diffs[f"grad:{name}"] = float(np.abs(engine["grads"][name] - g).max())
        else:
            assert engine[key].shape == ref.shape, key
            diffs[key] = float(np.abs(engine[key] - ref).max())
    return diffs
