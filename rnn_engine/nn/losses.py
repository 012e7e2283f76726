"""Losses with their gradients: softmax cross-entropy (ignore index for padding) and masked squared error.

Each loss returns `(loss, grad)`: the loss as a Python float and the gradient of that loss with respect to
the prediction, shaped and typed like it: `loss, d = cross_entropy(logits, targets); head.backward(d)`.
"""

from __future__ import annotations

from ..backend import xp
from ..errors import InvalidInput
from ..validate import is_int

REDUCTIONS = ("mean", "sum")


def _float_input(name: str, value, min_ndim: int) -> xp.ndarray:
    """A finite float32/float64 array of rank >= min_ndim (integer arrays become float64)."""
    arr = xp.asarray(value)
    if arr.dtype == xp.bool_ or arr.dtype.kind not in "fiu":
        raise InvalidInput(f"{name}: expected a float array, got dtype {arr.dtype}", field=name)
    if arr.dtype not in (xp.float32, xp.float64):
        arr = arr.astype(xp.float64)
    if arr.ndim < min_ndim:
        raise InvalidInput(
            f"{name}: expected an array of rank >= {min_ndim}, got shape {arr.shape}",
            field=name,
        )
    if not xp.isfinite(arr).all():
        raise InvalidInput(f"{name}: contains NaN or Inf", field=name)
    return arr


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise InvalidInput(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}", field="reduction")


def _check_axis(axis, ndim: int) -> int:
    if not is_int(axis) or not -ndim <= axis < ndim:
        raise InvalidInput(f"axis: expected an int in [{-ndim}, {ndim}), got {axis!r}", field="axis")
    return int(axis)


def _log_softmax(x: xp.ndarray, axis: int) -> xp.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax(x, axis: int = -1) -> xp.ndarray:
    """log(softmax(x)) along `axis`, computed as x - max - log(sum(exp(x - max))) so it never overflows."""
    x = _float_input("x", x, 1)
    return _log_softmax(x, _check_axis(axis, x.ndim))


def softmax(x, axis: int = -1) -> xp.ndarray:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum first for stability."""
    x = _float_input("x", x, 1)
    axis = _check_axis(axis, x.ndim)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cross_entropy(
    logits, targets, ignore_index: int = -100, reduction: str = "mean"
) -> tuple[float, xp.ndarray]:
    """Softmax cross-entropy of class scores against integer targets, with its gradient.

    Equals torch.nn.functional.cross_entropy with the class axis moved last:
    loss_i = -log_softmax(logits_i)[t_i],
    averaged over the targets that are not `ignore_index` (reduction="mean") or summed ("sum").

    Args:
        logits: (..., C) float scores; the class axis is the last one.
        targets: (...) integer class ids in [0, C), or `ignore_index` where there is nothing to predict.
        ignore_index: target value that contributes neither loss nor gradient (padding).
        reduction: "mean" or "sum".

    Returns:
        (loss, dlogits): the loss as a float and d loss / d logits (..., C) in the logits' dtype.
        If every target is ignored, the loss is 0.0 and dlogits is all zeros. (Deliberate deviation:
        torch returns nan for "mean" in that case; a batch made only of padding should not poison training.)
    """
    logits = _float_input("logits", logits, 1)
    _check_reduction(reduction)
    if not is_int(ignore_index):
        raise InvalidInput(f"ignore_index: expected an int, got {ignore_index!r}", field="ignore_index")
    C = logits.shape[-1]
    if C == 0:
        raise InvalidInput(
            f"logits: expected at least one class in the last axis, got shape {logits.shape}",
            field="logits",
        )
    targets = xp.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise InvalidInput(f"targets: expected integer class ids, got dtype {targets.dtype}", field="targets")
    if targets.shape != logits.shape[:-1]:
        raise InvalidInput(
            f"targets: expected shape {logits.shape[:-1]} (logits without the class axis), "
            f"got {targets.shape}", field="targets"
        )
    valid = targets != ignore_index
    bad = valid & ((targets < 0) | (targets >= C))
    if bad.any():
        raise InvalidInput(
            f"targets: expected class ids in [0, {C}) or ignore_index={ignore_index}, "
            f"got {int(targets[bad][0])}", field="targets"
        )
    flat = logits.reshape(-1, C)  # (N, C)
    t = xp.where(valid, targets, 0).reshape(-1)  # (N,) with ignored positions pointing at class 0
    w = valid.reshape(-1).astype(logits.dtype)  # (N,) 1 on counted targets
    count = int(valid.sum())
    if count == 0:
        return 0.0, xp.zeros_like(logits)
    logp = _log_softmax(flat, -1)  # (N, C)
    rows = xp.arange(flat.shape[0])
    total = -(logp[rows, t] * w).sum()
    scale = 1.0 / count if reduction == "mean" else 1.0
    dlogits = xp.exp(logp)  # softmax
    dlogits[rows, t] -= 1.0
    dlogits *= (w * logits.dtype.type(scale))[:, None]
    return float(total * scale), dlogits.reshape(logits.shape)


def mse(pred, target, mask=None, reduction: str = "mean") -> tuple[float, xp.ndarray]:
    """Mean squared error over the unmasked elements, with its gradient.

    Equals torch.nn.functional.mse_loss(pred[mask], target[mask]) (or reduction="sum").

    Args:
        pred: float array of any shape S (rank >= 1).
        target: float array of shape S.
        mask: None (every element counts) or a bool / 0-1 array broadcastable to S (numpy's right-aligned
            rules), true where the element counts; e.g. a (B, T, 1) step mask for S = (B, T, F).
        reduction: "mean" (divide by the number of counted elements) or "sum".

    Returns:
        (loss, dpred): the loss as a float and d loss / d pred shaped and typed like pred.
        If the mask excludes everything, the loss is 0.0 and dpred is all zeros (torch would give nan).
    """
    pred = _float_input("pred", pred, 1)
    target = _float_input("target", target, 1)
    _check_reduction(reduction)
    if target.shape != pred.shape:
        raise InvalidInput(
            f"target: expected shape {pred.shape} (like pred), got {target.shape}",
            field="target",
        )
    diff = pred - target.astype(pred.dtype, copy=False)
    if mask is None:
        w = None
        count = diff.size
    else:
        m = xp.asarray(mask)
        if m.dtype != xp.bool_:
            if m.dtype.kind not in "fiu" or not xp.isin(m, (0, 1)).all():
                raise InvalidInput(f"mask: expected bools or 0/1 values, got dtype {m.dtype}", field="mask")
            m = m != 0
        try:
            m = xp.broadcast_to(m, pred.shape)
        except ValueError:
            msg = f"mask: expected a shape broadcastable to {pred.shape}, got {m.shape}"
            raise InvalidInput(msg, field="mask") from None
        w = m.astype(pred.dtype)
        count = int(m.sum())
        diff = diff * w
    if count == 0:
        return 0.0, xp.zeros_like(pred)
    scale = 1.0 / count if reduction == "mean" else 1.0
    loss = float((diff * diff).sum() * scale)
    dpred = diff * pred.dtype.type(2.0 * scale)
    return loss, dpred
