"""Eager argument checks shared by the engine: each names the argument and says what it expected."""

from __future__ import annotations

from .backend import xp
from .errors import InvalidInput

FLOAT_DTYPES = (xp.float32, xp.float64)


def check_dtype(dtype) -> xp.dtype:
    """Return `dtype` as a NumPy float dtype (float32 or float64) or raise."""
    try:
        dt = None if dtype is None else xp.dtype(dtype)
    except TypeError:
        dt = None
    # `dt in [...]` would accept None (NumPy compares dtype == None as float64), so test the type explicitly
    if dt is None or dt.type not in FLOAT_DTYPES:
        raise InvalidInput(f"dtype: expected float32 or float64, got {dtype!r}")
    return dt


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | xp.integer):
        raise InvalidInput(f"{name}: expected an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise InvalidInput(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_probability(name: str, value, *, allow_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | xp.floating | xp.integer):
        raise InvalidInput(f"{name}: expected a number in [0, 1), got {value!r}")
    upper_ok = value <= 1 if allow_one else value < 1
    if not (value >= 0 and upper_ok):
        raise InvalidInput(f"{name}: expected a number in [0, {'1]' if allow_one else '1)'}, got {value}")
    return float(value)


def as_float_array(name: str, value, dtype, ndim: int | tuple[int, ...]) -> xp.ndarray:
    """Convert `value` to a finite float array of `dtype` with the given rank(s)."""
    try:
        arr = xp.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise InvalidInput(f"{name}: expected a numeric array, got a {type(value).__name__} ({exc})") from exc
    if arr.dtype.kind not in "fiu" or arr.dtype == xp.bool_:
        raise InvalidInput(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise InvalidInput(f"{name}: expected a {want} array, got shape {arr.shape}")
    arr = xp.asarray(arr, dtype=dtype)
    finite = xp.isfinite(arr)
    if not finite.all():
        first = tuple(int(i) for i in xp.argwhere(~finite)[0])
        raise InvalidInput(
            f"{name}: contains NaN or Inf (expected finite values), got {arr[first]} at index {first} "
            f"of shape {arr.shape}"
        )
    return arr


def check_shape(name: str, arr: xp.ndarray, expected: tuple[int, ...]) -> None:
    if tuple(arr.shape) != tuple(expected):
        raise InvalidInput(f"{name}: expected shape {tuple(expected)}, got {tuple(arr.shape)}")


def as_lengths(lengths, batch: int, steps: int) -> xp.ndarray | None:
    """Validate per-sequence lengths (B,) with 1 <= length <= T; None means all sequences are full."""
    if lengths is None:
        return None
    arr = xp.asarray(lengths)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and xp.all(arr == xp.floor(arr)):
            arr = arr.astype(xp.int64)
        else:
            raise InvalidInput(f"lengths: expected integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise InvalidInput(f"lengths: expected shape ({batch},) (one length per sequence), got {arr.shape}")
    if batch and (arr.min() < 1 or arr.max() > steps):
        raise InvalidInput(
            f"lengths: expected every length in [1, {steps}] (the padded sequence length), "
            f"got min {int(arr.min())}, max {int(arr.max())}"
        )
    return arr.astype(xp.int64)


def as_token_ids(name: str, value, vocab_size: int) -> xp.ndarray:
    arr = xp.asarray(value)
    if arr.dtype.kind not in "iu":
        raise InvalidInput(f"{name}: expected integer token ids, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise InvalidInput(
            f"{name}: token ids must be in [0, {vocab_size}), got min {int(arr.min())}, max {int(arr.max())}"
        )
    return arr.astype(xp.int64)
