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
        raise InvalidInput(f"dtype: expected float32 or float64, got {dtype!r}", field="dtype")
    return dt


def is_int(value) -> bool:
    """True for a Python or NumPy integer that is not a bool (bool is an int subclass in Python)."""
    return isinstance(value, int | xp.integer) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a Python or NumPy int or float that is not a bool."""
    return isinstance(value, int | float | xp.integer | xp.floating) and not isinstance(value, bool)


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Return `value` as an int if it is an integer (not a bool) >= `minimum`, else raise naming `name`."""
    if not is_int(value):
        raise InvalidInput(
            f"{name}: expected an int >= {minimum}, got {value!r} ({type(value).__name__})",
            field=name,
        )
    if value < minimum:
        raise InvalidInput(f"{name}: expected an int >= {minimum}, got {value}", field=name)
    return int(value)


def check_number(name: str, value, low: float, high: float | None = None, *, open_low: bool = False) -> float:
    """`value` as a float if it is a number in [low, high] ((low, high] with `open_low`); else raise."""
    ok = is_number(value) and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if open_low else '>='} {low}" + ("" if high is None else f" and <= {high}")
        raise InvalidInput(f"{name}: expected a number {bound}, got {value!r}", field=name)
    return float(value)


def check_choice(name: str, value, choices) -> None:
    """Raise naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise InvalidInput(f"{name}: expected one of {list(choices)}, got {value!r}", field=name)


def check_probability(name: str, value, *, allow_one: bool = False) -> float:
    if not is_number(value):
        raise InvalidInput(f"{name}: expected a number in [0, 1), got {value!r}", field=name)
    upper_ok = value <= 1 if allow_one else value < 1
    if not (value >= 0 and upper_ok):
        raise InvalidInput(
            f"{name}: expected a number in [0, {'1]' if allow_one else '1)'}, got {value}",
            field=name,
        )
    return float(value)


def as_float_array(name: str, value, dtype, ndim: int | tuple[int, ...]) -> xp.ndarray:
    """Convert `value` to a finite float array of `dtype` with the given rank(s)."""
    try:
        arr = xp.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise InvalidInput(f"{name}: expected a numeric array, got a {type(value).__name__} ({exc})",
        field=name) from exc
    if arr.dtype.kind not in "fiu" or arr.dtype == xp.bool_:
        raise InvalidInput(f"{name}: expected a numeric array, got dtype {arr.dtype}", field=name)
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise InvalidInput(f"{name}: expected a {want} array, got shape {arr.shape}", field=name)
    arr = xp.asarray(arr, dtype=dtype)
    finite = xp.isfinite(arr)
    if not finite.all():
        first = tuple(int(i) for i in xp.argwhere(~finite)[0])
        raise InvalidInput(
            f"{name}: contains NaN or Inf (expected finite values), got {arr[first]} at index {first} "
            f"of shape {arr.shape}", field=name
        )
    return arr


def check_shape(name: str, arr: xp.ndarray, expected: tuple[int, ...]) -> None:
    if tuple(arr.shape) != tuple(expected):
        raise InvalidInput(f"{name}: expected shape {tuple(expected)}, got {tuple(arr.shape)}", field=name)


def as_lengths(lengths, batch: int, steps: int) -> xp.ndarray | None:
    """Validate per-sequence lengths (B,) with 1 <= length <= T; None means all sequences are full."""
    if lengths is None:
        return None
    arr = xp.asarray(lengths)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and xp.all(arr == xp.floor(arr)):
            arr = arr.astype(xp.int64)
        else:
            raise InvalidInput(f"lengths: expected integers, got dtype {arr.dtype}", field="lengths")
    if arr.shape != (batch,):
        raise InvalidInput(
            f"lengths: expected shape ({batch},) (one length per sequence), got {arr.shape}",
            field="lengths",
        )
    if batch and (arr.min() < 1 or arr.max() > steps):
        raise InvalidInput(
            f"lengths: expected every length in [1, {steps}] (the padded sequence length), "
            f"got min {int(arr.min())}, max {int(arr.max())}", field="lengths"
        )
    return arr.astype(xp.int64)


def as_token_ids(name: str, value, vocab_size: int) -> xp.ndarray:
    arr = xp.asarray(value)
    if arr.dtype.kind not in "iu":
        raise InvalidInput(f"{name}: expected integer token ids, got dtype {arr.dtype}", field=name)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise InvalidInput(
            f"{name}: token ids must be in [0, {vocab_size}), got min {int(arr.min())}, max {int(arr.max())}",
            field=name
        )
    return arr.astype(xp.int64)
