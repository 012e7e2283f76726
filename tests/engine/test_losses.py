"""cross_entropy, mse, log_softmax, softmax: gradient checks, torch parity, stability, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_engine.errors import InvalidInput
from rnn_engine.losses import cross_entropy, log_softmax, mse, softmax
from tests.engine.gradcheck import numeric_grad, rel_error

TOLERANCE = 1e-6
PARITY = {np.float64: 1e-9, np.float32: 1e-5}


def torch_cross_entropy(torch, logits, targets, ignore_index=-100, reduction="mean"):
    """torch's loss and dlogits with the class axis last (flattened to (N, C), which torch reads directly)."""
    C = logits.shape[-1]
    t = torch.tensor(logits.reshape(-1, C), requires_grad=True)
    loss = torch.nn.functional.cross_entropy(t, torch.tensor(targets.reshape(-1)), ignore_index=ignore_index,
                                             reduction=reduction)
    loss.backward()
    return loss.item(), t.grad.numpy().reshape(logits.shape)


# ------------------------------------------------------------------------------------------ gradient checks
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_matches_finite_differences_with_ignored_targets(reduction):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 5))
    targets = rng.integers(0, 5, (3, 4))
    targets[0, 1] = targets[2, 3] = -100
    loss, d = cross_entropy(logits, targets, reduction=reduction)
    num = numeric_grad(lambda: cross_entropy(logits, targets, reduction=reduction)[0], logits)
    assert rel_error(d, num) < TOLERANCE
    assert not d[0, 1].any() and not d[2, 3].any()


def test_mse_gradient_matches_finite_differences_with_mask():
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((4, 6, 2)), rng.standard_normal((4, 6, 2))
    mask = rng.random((4, 6, 1)) < 0.6  # a step mask broadcast over the feature axis
    loss, d = mse(pred, target, mask)
    num = numeric_grad(lambda: mse(pred, target, mask)[0], pred)
    assert rel_error(d, num) < TOLERANCE
    assert not d[~np.broadcast_to(mask, d.shape)].any()


# --------------------------------------------------------------------------------------------- torch parity
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_equals_torch(dtype, reduction):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(2)
    logits = (3 * rng.standard_normal((2, 7, 11))).astype(dtype)
    targets = rng.integers(0, 11, (2, 7))
    targets[1, 4:] = 0
    loss, d = cross_entropy(logits, targets, ignore_index=0, reduction=reduction)
    ref_loss, ref_d = torch_cross_entropy(torch, logits, targets, ignore_index=0, reduction=reduction)
    tol = PARITY[dtype]
    assert d.dtype == dtype
    assert loss == pytest.approx(ref_loss, rel=tol, abs=tol)
    np.testing.assert_allclose(d, ref_d, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mse_with_mask_equals_torch_on_the_selected_elements(dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(3)
    pred, target = rng.standard_normal((2, 3, 4)).astype(dtype), rng.standard_normal((2, 3, 4)).astype(dtype)
    mask = rng.random((2, 3, 4)) < 0.5
    tp = torch.tensor(pred, requires_grad=True)
    ref = torch.nn.functional.mse_loss(tp[torch.tensor(mask)], torch.tensor(target)[torch.tensor(mask)])
    ref.backward()
    loss, d = mse(pred, target, mask)
    tol = PARITY[dtype]
    assert loss == pytest.approx(ref.item(), rel=tol)
    np.testing.assert_allclose(d, tp.grad.numpy(), rtol=tol, atol=tol)
    full_loss, _ = mse(pred, target)
    assert full_loss == pytest.approx(torch.nn.functional.mse_loss(tp, torch.tensor(target)).item(), rel=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_and_softmax_equal_torch_on_any_axis(dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    x = (5 * np.random.default_rng(4).standard_normal((3, 4, 5))).astype(dtype)
    for axis in (0, 1, -1):
        np.testing.assert_allclose(log_softmax(x, axis), torch.log_softmax(torch.tensor(x), axis).numpy(),
                                   rtol=PARITY[dtype], atol=PARITY[dtype])
        np.testing.assert_allclose(softmax(x, axis), torch.softmax(torch.tensor(x), axis).numpy(),
                                   rtol=PARITY[dtype], atol=PARITY[dtype])


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    classes=st.integers(1, 6),
    ignore_fraction=st.floats(0.0, 0.9),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_equals_torch_for_random_shapes(shape, classes, ignore_fraction, scale, seed):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(seed)
    shape = [rng.integers(1, 4)] + shape  # at least one position
    logits = scale * rng.standard_normal(shape + [classes])
    targets = rng.integers(0, classes, shape)
    targets[rng.random(shape) < ignore_fraction] = -100
    targets.reshape(-1)[0] = 0  # keep one counted target: torch's all-ignored mean is nan (we return 0)
    loss, d = cross_entropy(logits, targets)
    ref_loss, ref_d = torch_cross_entropy(torch, logits, targets)
    assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(d, ref_d, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------- stability, edge cases
def test_cross_entropy_is_finite_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [800.0, 1000.0, 900.0]])
    loss, d = cross_entropy(logits, np.array([1, 1]))
    assert loss == pytest.approx(2e4 / 2, rel=1e-12)  # row 0 costs 2e4, row 1 ~ e^-100 ~ 0
    assert np.isfinite(d).all()
    np.testing.assert_allclose(d.sum(axis=-1), 0, atol=1e-15)


def test_all_targets_ignored_gives_zero_loss_and_zero_gradient():
    loss, d = cross_entropy(np.ones((2, 3, 4)), np.full((2, 3), -100))
    assert loss == 0.0 and d.shape == (2, 3, 4) and not d.any()
    loss, d = mse(np.ones((2, 3)), np.zeros((2, 3)), mask=np.zeros((2, 3), dtype=bool))
    assert loss == 0.0 and not d.any()


def test_cross_entropy_of_a_confident_correct_prediction_is_near_zero_and_uniform_is_log_c():
    assert cross_entropy(np.array([[50.0, 0.0, 0.0]]), np.array([0]))[0] < 1e-20
    assert cross_entropy(np.zeros((4, 7)), np.arange(4))[0] == pytest.approx(np.log(7), rel=1e-15)


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), "targets"),  # wrong shape
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 3])), "targets"),  # class out of range
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, -1])), "targets"),  # negative, not ignore_index
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), "targets"),  # float targets
        (lambda: cross_entropy(np.array([[np.nan, 0, 0]]), np.array([0])), "logits"),
        (lambda: cross_entropy(np.zeros((2, 3), dtype=bool), np.array([0, 1])), "logits"),
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="none"), "reduction"),
        (lambda: cross_entropy(np.zeros((2, 3)), np.array([0, 1]), ignore_index=None), "ignore_index"),
        (lambda: mse(np.zeros((2, 3)), np.zeros((3, 2))), "target"),
        (lambda: mse(np.zeros((2, 3)), np.array([[0, np.inf, 0], [0, 0, 0]])), "target"),
        (lambda: mse(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.ones((3, 3), dtype=bool)), "mask"),
        (lambda: mse(np.zeros((2, 3)), np.zeros((2, 3)), mask=np.full((2, 3), 0.5)), "mask"),
        (lambda: log_softmax(np.zeros((2, 3)), axis=2), "axis"),
        (lambda: softmax(np.float64(1.0)), "x"),
    ],
)
def test_bad_input_raises_invalid_input_naming_the_argument(call, name):
    with pytest.raises(InvalidInput, match=rf"^{name}: "):
        call()
