"""Feed-forward building blocks shaped like torch.nn (`Embedding`, `Linear`, `Dropout`), each with backward.

Every module follows the engine's parameter convention (docs/DESIGN.md): `params` and, after `backward`,
`grads` are dicts keyed by PyTorch's names (`weight`, `bias`); `backward` overwrites `grads`; parameters are
changed in place only, so optimizers holding the arrays see every update.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import as_generator, grad_enabled, xp
from ..errors import InvalidInput
from ..validate import (
    as_float_array,
    as_token_ids,
    check_dtype,
    check_positive_int,
    check_probability,
    check_shape,
    is_int,
)
from .init import uniform

_ANY_RANK = tuple(range(1, 33))  # any rank >= 1 (beyond 32 dimensions is never needed here)


class Module:
    """The one base of layers, recurrent layers (`RecurrentBase`) and networks (`models.base.Network`): the
    params/grads dicts, train/eval mode (passed on to `children()`), parameter counts and shapes, state dicts
    and the forward cache. A composite (a Network) exposes its children's parameters flattened with dotted
    names and overrides `children()`; a leaf starts from `Module.__init__` (dtype, seed)."""

    def __init__(self, dtype: Any, seed: int | xp.random.Generator | None) -> None:
        self.dtype = check_dtype(dtype)
        self.rng = as_generator(seed)
        self.training = True
        self.params: dict[str, xp.ndarray] = {}
        self.grads: dict[str, xp.ndarray] = {}
        self._cache: Any = None

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def children(self) -> dict[str, Module]:
        """The named sub-modules (none for a leaf)."""
        return {}

    def train(self, mode: bool = True) -> Module:
        if not isinstance(mode, bool):
            raise InvalidInput(f"mode: expected a bool, got {mode!r}", field="mode")
        self.training = mode
        for child in self.children().values():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of every parameter, in state_dict order."""
        return {name: tuple(p.shape) for name, p in self.params.items()}

    def state_dict(self) -> dict[str, xp.ndarray]:
        """Copies of every parameter under PyTorch's names."""
        return {name: p.copy() for name, p in self.params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load arrays named and shaped like `params`; everything is checked before anything changes; in
        place, so optimizers holding the arrays see the new values."""
        if not isinstance(state, dict):
            raise InvalidInput(f"state: expected a dict of arrays, got {type(state).__name__}", field="state")
        params = self.params
        missing = [k for k in params if k not in state]
        extra = [k for k in state if k not in params]
        if missing or extra:
            raise InvalidInput(f"state: missing keys {missing}, unexpected keys {extra}", field="state")
        staged = {}
        for name, p in params.items():
            arr = as_float_array(f"state[{name!r}]", state[name], p.dtype, p.ndim)
            check_shape(f"state[{name!r}]", arr, p.shape)
            staged[name] = arr.copy()
        for name, arr in staged.items():
            params[name][...] = arr
        self._parameters_changed()

    def _parameters_changed(self) -> None:
        """Called after the parameters were overwritten in place by a load: passed on to the children (a
        frozen recurrent layer copies its weights again)."""
        for child in self.children().values():
            child._parameters_changed()

    def _need_cache(self) -> Any:
        if self._cache is None:
            raise InvalidInput(
                "backward: no forward pass to differentiate (call forward first, outside no_grad())",
                field="backward"
            )
        return self._cache


class Embedding(Module):
    """A lookup table: out[..., :] = weight[ids[...], :].

    Args:
        num_embeddings: vocabulary size V.
        embedding_dim: vector size E.
        padding_idx: a row (negative counts from the end, as in torch) whose vector is zero at
            initialisation and which never receives a gradient; None for no padding row.
        dtype: float32 (default) or float64.
        seed: int or numpy.random.Generator; weight ~ N(0, 1) as torch.nn.Embedding.

    Inputs: ids, integers of any shape S in [0, V).  Outputs: (*S, E).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, *,
                 dtype: Any = xp.float32, seed: int | xp.random.Generator | None = None) -> None:
        super().__init__(dtype, seed)
        self.num_embeddings = check_positive_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not is_int(padding_idx):
                raise InvalidInput(
                    f"padding_idx: expected an int or None, got {padding_idx!r}",
                    field="padding_idx",
                )
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise InvalidInput(
                    f"padding_idx: expected an int in [{-self.num_embeddings}, {self.num_embeddings}), "
                    f"got {padding_idx}", field="padding_idx"
                )
            padding_idx = int(padding_idx) % self.num_embeddings
        self.padding_idx = padding_idx
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight ~ N(0, 1); the padding row is zeroed."""
        weight = self.rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.params["weight"] = weight
        self.grads = {"weight": xp.zeros_like(weight)}

    def forward(self, ids) -> xp.ndarray:
        ids = as_token_ids("ids", ids, self.num_embeddings)
        self._cache = ids if grad_enabled() else None
        return self.params["weight"][ids]

    def backward(self, d_out) -> None:
        """Fill grads["weight"] (V, E): the sum of d_out over every position holding each id.

        The scatter-add is a stable sort of the ids and one segmented sum (`add.reduceat`), so
        repeated ids add up without a Python loop or `add.at`.
        """
        ids = self._need_cache()
        E = self.embedding_dim
        d_out = as_float_array("d_out", d_out, self.dtype, _ANY_RANK)
        check_shape("d_out", d_out, ids.shape + (E,))
        flat_ids = ids.reshape(-1)
        grad = xp.zeros((self.num_embeddings, E), dtype=self.dtype)
        if flat_ids.size:
            order = xp.argsort(flat_ids, kind="stable")
            sorted_ids = flat_ids[order]
            starts = xp.flatnonzero(xp.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # first of each run
            grad[sorted_ids[starts]] = xp.add.reduceat(d_out.reshape(-1, E)[order], starts, axis=0)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        self.grads["weight"] = grad

    def __repr__(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, dtype={self.dtype.name})"


class Linear(Module):
    """An affine map y = x W^T + b (the output layer y = V h + c).

    Args:
        in_features: size of each input, I.
        out_features: size of each output, O.
        bias: learn b (O,).
        dtype: float32 (default) or float64.
        seed: int or numpy.random.Generator; W and b ~ U(-1/sqrt(I), 1/sqrt(I)), which is what
            torch.nn.Linear's kaiming_uniform_(a=sqrt(5)) and bias initialisation amount to.

    Inputs: x (*, I).  Outputs: (*, O).  Parameters: weight (O, I), bias (O,).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype: Any = xp.float32, seed: int | xp.random.Generator | None = None) -> None:
        super().__init__(dtype, seed)
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        if not isinstance(bias, bool):
            raise InvalidInput(f"bias: expected a bool, got {bias!r}", field="bias")
        self.bias = bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        self.params["weight"] = uniform(self.rng, (self.out_features, self.in_features), bound, self.dtype)
        if self.bias:
            self.params["bias"] = uniform(self.rng, (self.out_features,), bound, self.dtype)
        self.grads = {name: xp.zeros_like(p) for name, p in self.params.items()}

    def forward(self, x) -> xp.ndarray:
        x = as_float_array("x", x, self.dtype, _ANY_RANK)
        if x.shape[-1] != self.in_features:
            raise InvalidInput(
                f"x: expected {self.in_features} features in the last axis, got shape {x.shape}", field="x"
            )
        self._cache = x if grad_enabled() else None
        y = x @ self.params["weight"].T  # (*, O)
        if self.bias:
            y += self.params["bias"]
        return y

    def backward(self, d_out) -> xp.ndarray:
        """Fill grads weight (O, I) and bias (O,); return dx (*, I)."""
        x = self._need_cache()
        d_out = as_float_array("d_out", d_out, self.dtype, _ANY_RANK)
        check_shape("d_out", d_out, x.shape[:-1] + (self.out_features,))
        flat = d_out.reshape(-1, self.out_features)  # (N, O)
        self.grads["weight"] = flat.T @ x.reshape(-1, self.in_features)
        if self.bias:
            self.grads["bias"] = flat.sum(axis=0)
        return d_out @ self.params["weight"]

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias}, dtype={self.dtype.name})")


class Dropout(Module):
    """In training mode zero each element with probability p and scale the rest by 1/(1-p); identity in eval.

    Args:
        p: drop probability in [0, 1] (1 drops everything, as in torch).
        seed: int or numpy.random.Generator drawing the masks.
        dtype: float32 (default) or float64, the dtype of the outputs.
    """

    def __init__(self, p: float = 0.5, *, dtype: Any = xp.float32,
                 seed: int | xp.random.Generator | None = None) -> None:
        super().__init__(dtype, seed)
        self.p = check_probability("p", p, allow_one=True)

    def forward(self, x) -> xp.ndarray:
        x = as_float_array("x", x, self.dtype, (0,) + _ANY_RANK)
        if not self.training or self.p == 0.0:
            mask = None
        elif self.p == 1.0:
            mask = xp.zeros(x.shape, dtype=self.dtype)
        else:
            mask = (self.rng.random(x.shape) >= self.p).astype(self.dtype) / self.dtype.type(1.0 - self.p)
        self._cache = (mask, x.shape) if grad_enabled() else None
        return x.copy() if mask is None else x * mask

    def backward(self, d_out) -> xp.ndarray:
        """dx = d_out times the mask of the last forward (d_out itself in eval mode or with p = 0)."""
        mask, shape = self._need_cache()
        d_out = as_float_array("d_out", d_out, self.dtype, (0,) + _ANY_RANK)
        check_shape("d_out", d_out, shape)
        return d_out.copy() if mask is None else d_out * mask

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
