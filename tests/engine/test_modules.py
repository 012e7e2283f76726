"""Embedding, Linear and Dropout: finite-difference gradients, PyTorch parity, initialisation and bad input.

Also checks the composite chain a language model runs, Embedding -> LSTM -> Linear -> cross_entropy, against
finite differences through every parameter.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.backend import no_grad
from rnn_engine.errors import InvalidInput
from rnn_engine.losses import cross_entropy
from rnn_engine.modules import Dropout, Embedding, Linear
from rnn_engine.nn.recurrent import LSTM
from tests.engine.gradcheck import numeric_grad, rel_error

TOLERANCE = 1e-6
PARITY = {np.float64: 1e-9, np.float32: 1e-5}


def probe(rng: np.random.Generator, shape) -> np.ndarray:
    """Random upstream gradient: the loss is sum(probe * out), so d loss / d out = probe."""
    return rng.standard_normal(shape)


# ------------------------------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_weight_gradient_matches_finite_differences_with_repeated_ids(padding_idx):
    rng = np.random.default_rng(0)
    emb = Embedding(6, 3, padding_idx=padding_idx, dtype=np.float64, seed=1)
    ids = np.array([[1, 2, 1, 5], [2, 0, 1, 2]])  # 1 and 2 repeat; 3 and 4 never appear
    w = probe(rng, (2, 4, 3))

    def loss():
        return float((emb(ids) * w).sum())

    emb(ids)
    emb.backward(w)
    num = numeric_grad(loss, emb.params["weight"])
    if padding_idx is not None:
        num[padding_idx] = 0  # by definition the padding row receives no gradient
    assert rel_error(emb.grads["weight"], num) < TOLERANCE
    assert not emb.grads["weight"][[3, 4]].any()


def test_linear_gradients_match_finite_differences_for_3d_input():
    rng = np.random.default_rng(0)
    lin = Linear(4, 3, dtype=np.float64, seed=2)
    x = rng.standard_normal((2, 5, 4))
    w = probe(rng, (2, 5, 3))

    def loss():
        return float((lin(x) * w).sum())

    lin(x)
    dx = lin.backward(w)
    assert rel_error(dx, numeric_grad(loss, x)) < TOLERANCE
    for name in ("weight", "bias"):
        assert rel_error(lin.grads[name], numeric_grad(loss, lin.params[name])) < TOLERANCE


def test_linear_without_bias_has_only_a_weight():
    lin = Linear(3, 2, bias=False, dtype=np.float64, seed=0)
    x = np.ones((4, 3))
    np.testing.assert_array_equal(lin(x), x @ lin.params["weight"].T)
    lin.backward(np.ones((4, 2)))
    assert set(lin.params) == set(lin.grads) == {"weight"}


def test_embedding_lstm_linear_cross_entropy_chain_matches_finite_differences():
    rng = np.random.default_rng(3)
    V, E, H, T, B = 7, 3, 4, 5, 2
    emb = Embedding(V, E, padding_idx=0, dtype=np.float64, seed=4)
    rnn = LSTM(E, H, batch_first=True, dtype=np.float64, seed=5)
    head = Linear(H, V, dtype=np.float64, seed=6)
    ids = rng.integers(1, V, (B, T))
    ids[1, 3:] = 0  # padding
    targets = rng.integers(0, V, (B, T))
    targets[1, 3:] = -100

    def loss():
        out, _ = rnn(emb(ids))
        return cross_entropy(head(out), targets)[0]

    out, _ = rnn(emb(ids))
    _, dlogits = cross_entropy(head(out), targets)
    dx, _ = rnn.backward(head.backward(dlogits))
    emb.backward(dx)
    for module in (emb, rnn, head):
        for name, p in module.params.items():
            num = numeric_grad(loss, p, eps=1e-5)  # W_hh grads are ~1e-4: a larger step limits round-off
            if module is emb:
                num[0] = 0
            assert rel_error(module.grads[name], num) < TOLERANCE, f"{type(module).__name__}.{name}"


# --------------------------------------------------------------------------------------------- torch parity
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_forward_and_gradient_equal_torch(dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(0)
    emb = Embedding(10, 4, padding_idx=3, dtype=dtype, seed=0)
    ids = rng.integers(0, 10, (3, 6))
    d_out = rng.standard_normal((3, 6, 4)).astype(dtype)
    tw = torch.tensor(emb.params["weight"], requires_grad=True)
    ref = torch.nn.functional.embedding(torch.tensor(ids), tw, padding_idx=3)
    ref.backward(torch.tensor(d_out))
    out = emb(ids)
    emb.backward(d_out)
    assert out.dtype == dtype and emb.grads["weight"].dtype == dtype
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=0, atol=PARITY[dtype])
    np.testing.assert_allclose(emb.grads["weight"], tw.grad.numpy(), rtol=PARITY[dtype], atol=PARITY[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_forward_and_gradients_equal_torch(dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(1)
    lin = Linear(5, 3, dtype=dtype, seed=0)
    x = rng.standard_normal((2, 4, 5)).astype(dtype)
    d_out = rng.standard_normal((2, 4, 3)).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(lin.params["weight"], requires_grad=True)
    tb = torch.tensor(lin.params["bias"], requires_grad=True)
    ref = torch.nn.functional.linear(tx, tw, tb)
    ref.backward(torch.tensor(d_out))
    y = lin(x)
    dx = lin.backward(d_out)
    tol = PARITY[dtype]
    pairs = ((y, ref), (dx, tx.grad), (lin.grads["weight"], tw.grad), (lin.grads["bias"], tb.grad))
    for mine, theirs in pairs:
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=tol, atol=tol)


# ------------------------------------------------------------------------------------------ initialisation
def test_linear_initialisation_is_uniform_within_one_over_sqrt_fan_in():
    lin = Linear(400, 300, seed=0)
    bound = 1 / np.sqrt(400)
    for p in lin.params.values():
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound  # spans the interval, not a narrower one
    assert abs(lin.params["weight"].std() - bound / np.sqrt(3)) < 0.01 * bound


def test_embedding_initialisation_is_standard_normal_with_zero_padding_row():
    emb = Embedding(500, 200, padding_idx=-1, seed=0)
    w = emb.params["weight"]
    assert emb.padding_idx == 499
    assert not w[499].any()
    assert abs(w[:499].mean()) < 0.01 and abs(w[:499].std() - 1) < 0.01


def test_same_seed_gives_same_parameters_and_state_dict_round_trips():
    a, b = Linear(3, 2, seed=7), Linear(3, 2, seed=7)
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])
    c = Linear(3, 2, seed=8)
    held = c.params["weight"]
    c.load_state_dict(a.state_dict())
    assert c.params["weight"] is held  # loaded in place, so optimizers keep seeing the arrays
    np.testing.assert_array_equal(held, a.params["weight"])


# ------------------------------------------------------------------------------------------------- dropout
def test_dropout_scales_kept_elements_and_backward_reuses_the_mask():
    drop = Dropout(0.25, dtype=np.float64, seed=0)
    x = np.ones((200, 50))
    y = drop(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.02
    d = np.arange(x.size, dtype=np.float64).reshape(x.shape)
    np.testing.assert_allclose(drop.backward(d), np.where(kept, d / 0.75, 0), rtol=1e-15)


def test_dropout_is_identity_in_eval_mode_and_with_p_zero_and_drops_all_with_p_one():
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(Dropout(0.5, dtype=np.float64, seed=0).eval()(x), x)
    np.testing.assert_array_equal(Dropout(0.0, dtype=np.float64, seed=0)(x), x)
    everything = Dropout(1.0, dtype=np.float64, seed=0)
    assert not everything(x).any() and not everything.backward(x).any()


# ---------------------------------------------------------------------------------------------- bad input
def test_embedding_rejects_ids_out_of_range_naming_ids():
    emb = Embedding(5, 2, seed=0)
    for bad in (np.array([0, 5]), np.array([-1, 2]), np.array([0.5, 1.0])):
        with pytest.raises(InvalidInput, match=r"^ids: "):
            emb(bad)


def test_linear_rejects_wrong_feature_count_and_nan():
    lin = Linear(3, 2, seed=0)
    with pytest.raises(InvalidInput, match=r"^x: expected 3 features"):
        lin(np.zeros((4, 5)))
    with pytest.raises(InvalidInput, match=r"^x: contains NaN"):
        lin(np.full((1, 3), np.nan))
    lin(np.zeros((4, 3)))
    with pytest.raises(InvalidInput, match=r"^d_out: expected shape \(4, 2\)"):
        lin.backward(np.zeros((4, 3)))


def test_backward_without_a_recorded_forward_is_refused():
    lin = Linear(3, 2, seed=0)
    with pytest.raises(InvalidInput, match=r"^backward: "):
        lin.backward(np.zeros((1, 2)))
    with no_grad():
        lin(np.zeros((1, 3)))
    with pytest.raises(InvalidInput, match=r"^backward: "):
        lin.backward(np.zeros((1, 2)))


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda: Embedding(0, 3), "num_embeddings"),
        (lambda: Embedding(3, 2.5), "embedding_dim"),
        (lambda: Embedding(3, 2, padding_idx=3), "padding_idx"),
        (lambda: Embedding(3, 2, dtype=np.int32), "dtype"),
        (lambda: Linear(0, 2), "in_features"),
        (lambda: Linear(2, -1), "out_features"),
        (lambda: Linear(2, 2, bias=1), "bias"),
        (lambda: Dropout(1.5), "p"),
    ],
)
def test_constructors_name_the_bad_argument(factory, name):
    with pytest.raises(InvalidInput, match=rf"^{name}: "):
        factory()


# ------------------------------------------------------------------------------------------ one module base
def test_layers_recurrent_layers_and_networks_share_the_one_module_base():
    from rnn_engine.config import ModelConfig
    from rnn_engine.models import build_network
    from rnn_engine.nn.modules import Module

    net = build_network(ModelConfig(task="language_model", embedding_dim=4, hidden_size=5, num_layers=1,
                                    dropout=0.5), vocab_size=7)
    assert all(isinstance(m, Module) for m in (net, *net.modules.values(), LSTM(2, 3), Linear(2, 3)))
    for name in ("train", "eval", "state_dict", "load_state_dict", "num_parameters", "param_shapes"):
        owners = {type(m).__mro__[[name in vars(c) for c in type(m).__mro__].index(True)]
                  for m in (net, *net.modules.values())}
        assert owners <= {Module} or name == "param_shapes", (name, owners)  # RecurrentBase computes shapes
    assert net.eval() is net and not any(m.training for m in net.modules.values())
    assert net.train() is net and all(m.training for m in net.modules.values())
    with pytest.raises(InvalidInput, match="mode: expected a bool") as err:
        net.modules["rnn"].train(1)
    assert err.value.field == "mode"
    # a network's state dict is its modules' arrays under dotted names; loading writes them in place
    state = net.state_dict()
    assert set(state) == set(net.params) and "rnn.weight_hh_l0" in state
    arrays = {k: p for k, p in net.params.items()}
    net.load_state_dict({k: np.zeros_like(v) for k, v in state.items()})
    assert all(p is arrays[k] and not p.any() for k, p in net.params.items())
    assert net.num_parameters() == sum(v.size for v in state.values())


def test_a_frozen_layer_follows_a_loaded_state_dict():
    x = np.random.default_rng(0).standard_normal((9, 8, 2)).astype(np.float32)  # T*B >= 64: kept copies
    m, twin = LSTM(2, 3, seed=0).freeze(), LSTM(2, 3, seed=1)
    m.load_state_dict(twin.state_dict())
    with no_grad():
        np.testing.assert_array_equal(m(x)[0], twin(x)[0])
