"""Optimizers with torch.optim's update rules, hyperparameter names and defaults, plus global-norm clipping.

Each optimizer follows the single-tensor code path of torch/optim/{sgd,adam,adagrad,rmsprop}.py operation by
operation, so the same weights and gradients give the same numbers (to rounding) in both.
Interface (docs/DESIGN.md):

    opt = Adam(params, lr=1e-3)          # params: dict[str, ndarray], updated in place
    opt.step(grads)                      # grads: dict with exactly the same keys and shapes
    opt.lr = 5e-4                        # schedules set it between steps
    state = opt.state_dict()             # {"kind", "hyperparameters" (JSON-able), "step", "buffers" (arrays)}
    opt.load_state_dict(state)

Learning-rate schedules live in `schedules.py` and are re-exported here.

Over 350 lines on purpose: five optimizers of 30-60 lines on one base class (parameter and gradient checks,
state dicts); one file keeps each next to the torch rule it mirrors and to the shared checks.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import xp
from ..errors import InvalidInput
from ..validate import is_int
from .schedules import ConstantSchedule, CosineSchedule, Schedule, StepSchedule, make_schedule

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "clip_grad_norm",
           "Schedule", "ConstantSchedule", "StepSchedule", "CosineSchedule", "make_schedule"]


def _number(name: str, value, what: str, low: float = 0.0, high: float | None = None) -> float:
    """A finite real in [low, high) (or [low, inf)), else InvalidInput naming the argument like torch does."""
    ok = not isinstance(value, bool) and isinstance(value, int | float | xp.integer | xp.floating)
    ok = ok and math.isfinite(value) and value >= low and (high is None or value < high)
    if not ok:
        span = f"[{low:g}, {high:g})" if high is not None else f">= {low:g}"
        raise InvalidInput(
            f"{name}: invalid {what} value, expected a finite number {span}, got {value!r}",
            field=name,
        )
    return float(value)


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: expected a bool, got {value!r}", field=name)
    return value


class Optimizer:
    """Shared parameter bookkeeping, gradient checks and state dicts; subclasses define `_update`."""

    buffer_names: tuple[str, ...] = ()

    def __init__(self, params: dict[str, xp.ndarray], lr: float) -> None:
        if not isinstance(params, dict) or not params:
            got = f"{len(params)} entries" if isinstance(params, dict) else type(params).__name__
            raise InvalidInput(
                f"params: expected a non-empty dict of name -> float array, got {got}",
                field="params",
            )
        for name, p in params.items():
            if not isinstance(name, str) or not isinstance(p, xp.ndarray) or p.dtype.kind != "f":
                raise InvalidInput(
                    f"params[{name!r}]: expected a float ndarray, got {type(p).__name__}",
                    field=f"params[{name!r}]",
                )
        self.params = params
        self.lr = lr
        self.step_count = 0
        self.buffers: dict[str, dict[str, xp.ndarray]] = {b: {} for b in self.buffer_names}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _number("lr", value, "learning rate")

    def hyperparameters(self) -> dict[str, Any]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _update(self, name: str, p: xp.ndarray, g: xp.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def step(self, grads: dict[str, xp.ndarray]) -> None:
        """Update every parameter in place from `grads` (same keys, shapes; not modified)."""
        if not isinstance(grads, dict):
            raise InvalidInput(
                f"grads: expected a dict of name -> array, got {type(grads).__name__}",
                field="grads",
            )
        missing = [k for k in self.params if k not in grads]
        extra = [k for k in grads if k not in self.params]
        if missing or extra:
            raise InvalidInput(
                f"grads: expected the parameters' keys; missing {missing}, unexpected {extra}",
                field="grads",
            )
        checked = {}
        for name, p in self.params.items():
            g = xp.asarray(grads[name])
            if g.shape != p.shape or g.dtype.kind != "f":
                raise InvalidInput(f"grads[{name!r}]: expected a float array of shape {p.shape}, "
                                   f"got {g.dtype} {g.shape}", field=f"grads[{name!r}]")
            checked[name] = g.astype(p.dtype, copy=False)
        self.step_count += 1
        for name, p in self.params.items():
            self._update(name, p, checked[name])

    def state_dict(self) -> dict[str, Any]:
        """Plain values: "kind", "hyperparameters" and "step" are JSON-able; "buffers" maps
        "<buffer>.<param name>" (e.g. "exp_avg.head.weight") to array copies, ready for `.npz`."""
        buffers = {f"{b}.{name}": arr.copy() for b, per in self.buffers.items() for name, arr in per.items()}
        return {"kind": type(self).__name__, "hyperparameters": self.hyperparameters(),
                "step": self.step_count, "buffers": buffers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore hyperparameters (lr included), step count and buffers; all checked before any change."""
        if not isinstance(state, dict) or not {"kind", "hyperparameters", "step", "buffers"} <= state.keys():
            raise InvalidInput(
                "state: expected a dict with kind, hyperparameters, step and buffers",
                field="state",
            )
        if state["kind"] != type(self).__name__:
            raise InvalidInput(
                f"state: expected kind {type(self).__name__!r}, got {state['kind']!r}",
                field="state",
            )
        hyper = state["hyperparameters"]
        if not isinstance(hyper, dict) or set(hyper) != set(self.hyperparameters()):
            raise InvalidInput(
                f"state['hyperparameters']: expected keys {sorted(self.hyperparameters())}",
                field="state['hyperparameters']",
            )
        step = state["step"]
        if not is_int(step) or step < 0:
            raise InvalidInput(f"state['step']: expected an int >= 0, got {step!r}", field="state['step']")
        staged: dict[str, dict[str, xp.ndarray]] = {b: {} for b in self.buffer_names}
        for key, arr in state["buffers"].items():
            b, _, name = key.partition(".")
            if b not in staged or name not in self.params:
                raise InvalidInput(f"state['buffers']: unexpected key {key!r}", field="state['buffers']")
            arr = xp.asarray(arr)
            if arr.shape != self.params[name].shape or arr.dtype.kind != "f":
                raise InvalidInput(f"state['buffers'][{key!r}]: expected a float array of shape "
                                   f"{self.params[name].shape}, got {arr.dtype} {arr.shape}",
                                   field=f"state['buffers'][{key!r}]")
            staged[b][name] = arr.astype(self.params[name].dtype, copy=True)
        hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}  # JSON: tuples -> lists
        fresh = type(self)(self.params, **hyper)
        fresh.step_count = int(step)
        fresh.buffers = staged
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as torch.optim.SGD.

    g = grad + weight_decay * p;  buf = g on the first step, then momentum * buf + (1 - dampening) * g;
    g = g + momentum * buf (nesterov) or buf;  p -= lr * g.  maximize ascends instead.
    """

    buffer_names = ("momentum_buffer",)

    def __init__(self, params: dict[str, xp.ndarray], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr)
        self.momentum = _number("momentum", momentum, "momentum")
        self.dampening = _number("dampening", dampening, "dampening", low=-math.inf)
        self.weight_decay = _number("weight_decay", weight_decay, "weight_decay")
        self.nesterov = _flag("nesterov", nesterov)
        self.maximize = _flag("maximize", maximize)
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise InvalidInput(f"nesterov: Nesterov momentum requires a momentum > 0 and zero dampening, "
                               f"got momentum={momentum}, dampening={dampening}", field="nesterov")

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov, "maximize": self.maximize}

    def _update(self, name, p, g):
        g = -g if self.maximize else g
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        if self.momentum != 0:
            buf = self.buffers["momentum_buffer"].get(name)
            if buf is None:
                buf = self.buffers["momentum_buffer"][name] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), as torch.optim.Adam; weight_decay is L2 added to the gradient (coupled).

    m = lerp(m, g, 1 - beta1);  v = beta2 v + (1 - beta2) g^2;  (amsgrad: v_max = max(v_max, v), used for v)
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    decoupled_weight_decay = False

    def __init__(self, params: dict[str, xp.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr)
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise InvalidInput(f"betas: expected a pair of numbers in [0, 1), got {betas!r}", field="betas")
        self.betas = (_number("betas[0]", betas[0], "beta parameter", high=1.0),
                      _number("betas[1]", betas[1], "beta parameter", high=1.0))
        self.eps = _number("eps", eps, "epsilon")
        self.weight_decay = _number("weight_decay", weight_decay, "weight_decay")
        self.amsgrad = _flag("amsgrad", amsgrad)
        self.maximize = _flag("maximize", maximize)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay,
                "amsgrad": self.amsgrad, "maximize": self.maximize}

    def _update(self, name, p, g):
        beta1, beta2 = self.betas
        lr, t = self.lr, self.step_count
        g = -g if self.maximize else g
        if self.weight_decay != 0:
            if self.decoupled_weight_decay:
                p *= 1 - lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        m = self.buffers["exp_avg"].setdefault(name, xp.zeros_like(p))
        v = self.buffers["exp_avg_sq"].setdefault(name, xp.zeros_like(p))
        w = 1 - beta1  # torch's lerp: start + w (end - start) for |w| < 0.5, else end - (end - start)(1 - w)
        if abs(w) < 0.5:
            m += w * (g - m)
        else:
            m[...] = g - (g - m) * (1 - w)
        v *= beta2
        v += (1 - beta2) * g * g
        if self.amsgrad:
            v_max = self.buffers["max_exp_avg_sq"].setdefault(name, xp.zeros_like(p))
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        step_size = lr / (1 - beta1**t)
        denom = xp.sqrt(v) / (1 - beta2**t) ** 0.5 + self.eps
        p += (-step_size * m) / denom  # torch's addcdiv: p + (value * t1) / t2


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW: first p *= 1 - lr wd."""

    decoupled_weight_decay = True

    def __init__(self, params: dict[str, xp.ndarray], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad: sum += g^2;  p -= lr / (1 + (t-1) lr_decay) g / (sqrt(sum) + eps)."""

    buffer_names = ("sum",)

    def __init__(self, params: dict[str, xp.ndarray], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr)
        self.lr_decay = _number("lr_decay", lr_decay, "lr_decay")
        self.weight_decay = _number("weight_decay", weight_decay, "weight_decay")
        self.initial_accumulator_value = _number("initial_accumulator_value", initial_accumulator_value,
                                                 "initial_accumulator_value")
        self.eps = _number("eps", eps, "epsilon")
        self.maximize = _flag("maximize", maximize)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps,
                "maximize": self.maximize}

    def _update(self, name, p, g):
        g = -g if self.maximize else g
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        clr = self.lr / (1 + (self.step_count - 1) * self.lr_decay)
        acc = self.buffers["sum"].get(name)
        if acc is None:
            acc = self.buffers["sum"][name] = xp.full_like(p, self.initial_accumulator_value)
        acc += g * g
        p += (-clr * g) / (xp.sqrt(acc) + self.eps)


def _lerp(start: xp.ndarray, end: xp.ndarray, w: float) -> None:
    """start <- torch.lerp(start, end, w) in place: start + w (end - start) for |w| < 0.5, else
    end - (end - start)(1 - w) (torch's two branches round differently)."""
    if abs(w) < 0.5:
        start += w * (end - start)
    else:
        start[...] = end - (end - start) * (1 - w)


class RMSprop(Optimizer):
    """RMSprop (Hinton; char-rnn's optimizer), as torch.optim.RMSprop:

    g = grad + weight_decay p;  v = alpha v + (1 - alpha) g^2;  centered: m = lerp(m, g, 1 - alpha),
    avg = sqrt(v - m^2) + eps, else avg = sqrt(v) + eps;  momentum > 0: buf = momentum buf + g / avg,
    p -= lr buf; else p -= lr g / avg.
    """

    buffer_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params: dict[str, xp.ndarray], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, lr)
        self.alpha = _number("alpha", alpha, "alpha")
        self.eps = _number("eps", eps, "epsilon")
        self.weight_decay = _number("weight_decay", weight_decay, "weight_decay")
        self.momentum = _number("momentum", momentum, "momentum")
        self.centered = _flag("centered", centered)
        self.maximize = _flag("maximize", maximize)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
                "momentum": self.momentum, "centered": self.centered, "maximize": self.maximize}

    def _update(self, name, p, g):
        g = -g if self.maximize else g
        if self.weight_decay != 0:
            g = g + self.weight_decay * p
        v = self.buffers["square_avg"].setdefault(name, xp.zeros_like(p))
        v *= self.alpha
        v += (1 - self.alpha) * g * g  # torch's addcmul: v + value * g * g
        if self.centered:
            m = self.buffers["grad_avg"].setdefault(name, xp.zeros_like(p))
            _lerp(m, g, 1 - self.alpha)
            avg = xp.sqrt(v - m * m)
        else:
            avg = xp.sqrt(v)
        avg += self.eps
        if self.momentum > 0:
            buf = self.buffers["momentum_buffer"].setdefault(name, xp.zeros_like(p))
            buf *= self.momentum
            buf += g / avg
            p += -self.lr * buf
        else:
            p += (-self.lr * g) / avg  # torch's addcdiv: p + (value * t1) / t2


def clip_grad_norm(grads: dict[str, xp.ndarray], max_norm: float, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients in place so that their global 2-norm is at most `max_norm`; return the norm before.

    As torch.nn.utils.clip_grad_norm_: total = ||(||g_1||, ..., ||g_n||)||,
    every g *= min(1, max_norm / (total + 1e-6)) (also when that factor is 1).

    Args:
        grads: name -> float array, modified in place.
        max_norm: the largest allowed global norm (> 0).
        error_if_nonfinite: raise InvalidInput if the norm is NaN or Inf (else grads become NaN, as torch).
    """
    if not isinstance(grads, dict):
        raise InvalidInput(
            f"grads: expected a dict of name -> array, got {type(grads).__name__}",
            field="grads",
        )
    max_norm = _number("max_norm", max_norm, "max_norm")
    if max_norm <= 0:
        raise InvalidInput(f"max_norm: expected a number > 0, got {max_norm}", field="max_norm")
    arrays = list(grads.values())
    for name, g in grads.items():
        if not isinstance(g, xp.ndarray) or g.dtype.kind != "f":
            raise InvalidInput(
                f"grads[{name!r}]: expected a float ndarray, got {type(g).__name__}",
                field=f"grads[{name!r}]",
            )
    if not arrays:
        return 0.0
    dtype = xp.result_type(*arrays)
    norms = xp.array([xp.sqrt(xp.vdot(g, g)) for g in arrays], dtype=dtype)
    total = xp.sqrt(xp.vdot(norms, norms))
    if error_if_nonfinite and not xp.isfinite(total):
        raise InvalidInput(f"grads: the total gradient norm is {float(total)}, cannot clip", field="grads")
    coef = min(dtype.type(max_norm) / (total + dtype.type(1e-6)), dtype.type(1.0))
    with xp.errstate(invalid="ignore"):  # inf * 0 -> nan is the documented outcome of a non-finite norm
        for g in arrays:
            g *= coef
    return float(total)
