"""Bad input to RNN/LSTM/GRU raises InvalidInput (a ValueError) or TypeError naming the argument, what it got
and what it expected; a failed load_state_dict leaves every parameter as it was.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnn_engine.errors import InvalidInput
from tests.engine.recurrent_cases import KINDS, make_engine

I, H, T, B = 3, 4, 5, 2


def _layer(kind="lstm", **kwargs):
    return make_engine(kind, I, H, dtype=np.float64, seed=0, **kwargs)


def _forward(m, x, h0=None, c0=None, lengths=None):
    if m.mode == "LSTM":
        return m(x, None if h0 is None and c0 is None else (h0, c0), lengths=lengths)
    return m(x, h0, lengths=lengths)


def _with_nan(shape, index):
    a = np.zeros(shape)
    a[index] = np.nan
    return a


def _with_inf(shape, index):
    a = np.zeros(shape)
    a[index] = -np.inf
    return a


# --------------------------------------------------------------------------------------------------- forward
BAD_FORWARD = [
    ("x rank 2", dict(x=np.zeros((T, I))), r"^x: expected a 3-D array, got shape \(5, 3\)"),
    ("x rank 4", dict(x=np.zeros((T, B, I, 1))), r"^x: expected a 3-D array, got shape \(5, 2, 3, 1\)"),
    ("x features", dict(x=np.zeros((T, B, 7))), r"^x: expected 3 features in the last axis, got 7 \(shape"),
    ("x empty", dict(x=np.zeros((0, B, I))),
     r"^x: expected at least one step and one sequence, got shape \(0, 2, 3\)"),
    ("x strings", dict(x=np.array([["a"]])), r"^x: expected a numeric array, got dtype <U1"),
    ("x ragged", dict(x=[[[1.0, 2.0, 3.0]], [[1.0]]]), r"^x: expected a numeric array, got a list"),
    ("x NaN", dict(x=_with_nan((T, B, I), (2, 1, 0))),
     r"^x: contains NaN or Inf \(expected finite values\), got nan at index \(2, 1, 0\)"),
    ("x Inf", dict(x=_with_inf((T, B, I), (4, 0, 2))),
     r"^x: contains NaN or Inf .*got -inf at index \(4, 0, 2\)"),
    ("h0 batch", dict(h0=np.zeros((1, B + 1, H))), r"^h0: expected shape \(1, 2, 4\), got \(1, 3, 4\)"),
    ("h0 layers", dict(h0=np.zeros((2, B, H))), r"^h0: expected shape \(1, 2, 4\), got \(2, 2, 4\)"),
    ("h0 rank", dict(h0=np.zeros((B, H))), r"^h0: expected a 3-D array, got shape \(2, 4\)"),
    ("h0 NaN", dict(h0=_with_nan((1, B, H), (0, 1, 3))), r"^h0: contains NaN or Inf .*index \(0, 1, 3\)"),
    ("lengths above T", dict(lengths=[T, T + 1]),
     r"^lengths: expected every length in \[1, 5\] \(the padded sequence length\), got min 5, max 6"),
    ("lengths zero", dict(lengths=[0, T]), r"^lengths: expected every length in \[1, 5\].*got min 0"),
    ("lengths negative", dict(lengths=[-2, 3]), r"^lengths: expected every length in \[1, 5\].*got min -2"),
    ("lengths count", dict(lengths=[T]),
     r"^lengths: expected shape \(2,\) \(one length per sequence\), got \(1,\)"),
    ("lengths fractional", dict(lengths=[1.5, 2.0]), r"^lengths: expected integers, got dtype float64"),
    ("lengths bool", dict(lengths=[True, True]), r"^lengths: expected integers, got dtype bool"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("args", "pattern"), [c[1:] for c in BAD_FORWARD], ids=[c[0] for c in BAD_FORWARD])
def test_bad_forward_input_is_rejected_with_a_message_naming_it(kind, args, pattern):
    m = _layer(kind)
    x = args.get("x", np.zeros((T, B, I)))
    h0 = args.get("h0")
    c0 = np.zeros((1, B, H)) if h0 is not None and kind == "lstm" else None
    with pytest.raises(InvalidInput, match=pattern):
        _forward(m, x, h0, c0, args.get("lengths"))


def test_lstm_c0_of_the_wrong_shape_is_rejected():
    with pytest.raises(InvalidInput, match=r"^c0: expected shape \(1, 2, 4\), got \(1, 2, 5\)"):
        _layer("lstm")(np.zeros((T, B, I)), (np.zeros((1, B, H)), np.zeros((1, B, H + 1))))


def test_lstm_hx_that_is_not_a_pair_is_rejected():
    with pytest.raises(InvalidInput, match=r"^hx: expected a pair \(h0, c0\)"):
        _layer("lstm")(np.zeros((T, B, I)), np.zeros((1, B, H)))


def test_batch_first_checks_features_of_the_batch_first_layout():
    m = _layer("gru", batch_first=True)
    with pytest.raises(InvalidInput, match=r"^x: expected 3 features in the last axis, got 7"):
        m(np.zeros((B, T, 7)))


# -------------------------------------------------------------------------------------------------- backward
@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
def test_backward_rejects_a_gradient_not_shaped_like_the_output(batch_first):
    m = _layer("gru", batch_first=batch_first)
    x = np.zeros((B, T, I) if batch_first else (T, B, I))
    out, _ = m(x)
    wrong = np.zeros(out.shape[:2] + (H + 1,))
    expected = re.escape(f"d_output: expected shape {out.shape}, got {wrong.shape}")
    with pytest.raises(InvalidInput, match=f"^{expected}"):
        m.backward(wrong)
    with pytest.raises(InvalidInput, match=r"^d_h_n: expected shape \(1, 2, 4\), got \(2, 2, 4\)"):
        m.backward(np.zeros(out.shape), np.zeros((2, B, H)))
    with pytest.raises(InvalidInput, match=r"^d_output: contains NaN or Inf"):
        m.backward(_with_nan(out.shape, (0, 0, 0)))


# ------------------------------------------------------------------------------------------------ constructor
BAD_CONSTRUCTOR = [
    ("hidden_size 0", "tanh", dict(hidden_size=0), InvalidInput,
     r"^hidden_size: expected an int >= 1, got 0"),
    ("hidden_size float", "gru", dict(hidden_size=4.0), InvalidInput,
     r"^hidden_size: expected an int >= 1, got 4\.0 \(float\)"),
    ("input_size negative", "lstm", dict(input_size=-3), InvalidInput,
     r"^input_size: expected an int >= 1, got -3"),
    ("num_layers 0", "lstm", dict(num_layers=0), InvalidInput, r"^num_layers: expected an int >= 1, got 0"),
    ("num_layers bool", "gru", dict(num_layers=True), InvalidInput,
     r"^num_layers: expected an int >= 1, got True"),
    ("dropout 1.5", "lstm", dict(dropout=1.5), InvalidInput,
     r"^dropout: expected a number in \[0, 1\), got 1\.5"),
    ("dropout 1", "gru", dict(dropout=1.0), InvalidInput,
     r"^dropout: expected a number in \[0, 1\), got 1\.0"),
    ("dropout negative", "tanh", dict(dropout=-0.1), InvalidInput, r"^dropout: expected .*got -0\.1"),
    ("dropout NaN", "tanh", dict(dropout=float("nan")), InvalidInput, r"^dropout: expected .*got nan"),
    ("dropout str", "relu", dict(dropout="0.1"), InvalidInput, r"^dropout: expected .*got '0\.1'"),
    ("dtype int", "lstm", dict(dtype=int), InvalidInput,
     r"^dtype: expected float32 or float64, got <class 'int'>"),
    ("dtype int32", "gru", dict(dtype=np.int32), InvalidInput, r"^dtype: expected float32 or float64, got"),
    ("dtype float16", "tanh", dict(dtype="float16"), InvalidInput, r"^dtype: expected .*got 'float16'"),
    ("dtype unknown", "tanh", dict(dtype="junk"), InvalidInput,
     r"^dtype: expected float32 or float64, got 'junk'"),
    ("dtype None", "relu", dict(dtype=None), InvalidInput, r"^dtype: expected float32 or float64, got None"),
    ("bias str", "gru", dict(bias="yes"), InvalidInput, r"^bias: expected a bool, got 'yes'"),
    ("batch_first int", "lstm", dict(batch_first=1), InvalidInput, r"^batch_first: expected a bool, got 1"),
    ("init unknown", "tanh", dict(init="he"), InvalidInput, r"^init: expected one of \('default'.*got 'he'"),
    ("seed negative", "lstm", dict(seed=-1), TypeError, r"^seed: expected a non-negative int.*got -1"),
    ("seed float", "gru", dict(seed=0.5), TypeError, r"^seed: expected a non-negative int.*got 0\.5"),
    ("forget_bias NaN", "lstm", dict(forget_bias=float("nan")), InvalidInput,
     r"^forget_bias: expected a finite number or None, got nan"),
    ("forget_bias str", "lstm", dict(forget_bias="1"), InvalidInput, r"^forget_bias: expected .*got '1'"),
]


@pytest.mark.parametrize(("kind", "override", "error", "pattern"), [c[1:] for c in BAD_CONSTRUCTOR],
                         ids=[c[0] for c in BAD_CONSTRUCTOR])
def test_bad_constructor_arguments_are_rejected(kind, override, error, pattern):
    kwargs = dict(input_size=I, hidden_size=H, dtype=np.float64, seed=0) | override
    input_size, hidden_size = kwargs.pop("input_size"), kwargs.pop("hidden_size")
    with pytest.raises(error, match=pattern):
        make_engine(kind, input_size, hidden_size, **kwargs)


@pytest.mark.parametrize("nonlinearity", ["sigmoid", "Tanh", None])
def test_unknown_nonlinearity_is_rejected(nonlinearity):
    from rnn_engine.nn.recurrent import RNN

    pattern = rf"^nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}"
    with pytest.raises(InvalidInput, match=pattern):
        RNN(I, H, nonlinearity=nonlinearity)


# ------------------------------------------------------------------------------------------------ state dict
def _bad_states(m):
    good = m.state_dict()
    last = list(good)[-1]  # a failure on the last key proves nothing before it was written
    missing = {k: v for k, v in good.items() if k != last}
    extra = good | {"weight_ih_l9": np.zeros((1, 1))}
    shaped = good | {last: np.zeros(good[last].shape[0] + 1)}
    ranked = good | {last: good[last][None]}
    nan = good | {last: _with_nan(good[last].shape, 0)}
    text = good | {last: "abc"}
    return [
        ("missing", missing, rf"^state: missing keys \['{last}'\], unexpected keys \[\]"),
        ("extra", extra, r"^state: missing keys \[\], unexpected keys \['weight_ih_l9'\]"),
        ("mis-shaped", shaped, rf"^state\['{last}'\]: expected shape \(16,\), got \(17,\)"),
        ("mis-ranked", ranked, rf"^state\['{last}'\]: expected a 1-D array, got shape \(1, 16\)"),
        ("NaN", nan, rf"^state\['{last}'\]: contains NaN or Inf"),
        ("text", text, rf"^state\['{last}'\]: expected a numeric array, got dtype <U3"),
        ("not a dict", list(good.values()), r"^state: expected a dict of arrays, got list"),
    ]


@pytest.mark.parametrize("case", range(7), ids=["missing", "extra", "mis-shaped", "mis-ranked", "NaN", "text",
                                                "not a dict"])
def test_failed_load_state_dict_names_the_problem_and_changes_nothing(case):
    m = _layer("lstm", num_layers=2, bidirectional=True)
    donor = _layer("lstm", num_layers=2, bidirectional=True, init="orthogonal")
    before = m.state_dict()
    held = dict(m.params)  # optimizers hold these very arrays
    _, state, pattern = _bad_states(donor)[case]
    with pytest.raises(InvalidInput, match=pattern):
        m.load_state_dict(state)
    for name, p in m.params.items():
        assert p is held[name]
        np.testing.assert_array_equal(p, before[name], err_msg=f"{name} was half-loaded")


def test_successful_load_state_dict_writes_in_place_and_casts_to_the_layer_dtype():
    m = _layer("gru")
    held = dict(m.params)
    donor = {k: v.astype(np.float32) + 1 for k, v in _layer("gru", init="xavier").state_dict().items()}
    m.load_state_dict(donor)
    for name, p in m.params.items():
        assert p is held[name] and p.dtype == np.float64
        np.testing.assert_array_equal(p, donor[name].astype(np.float64))
