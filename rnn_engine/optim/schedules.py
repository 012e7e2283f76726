"""Learning-rate schedules: a pure function of the step, `lr_at(step)`, that the trainer writes to `opt.lr`.

`step` counts optimizer steps already taken (0 for the first update), like the `last_epoch` of a
torch.optim.lr_scheduler after that many `scheduler.step()` calls. Schedules hold no state, so resuming a
run needs only the step number.

    schedule = make_schedule("cosine", base_lr=3e-3, warmup_steps=100, total_steps=5000, min_lr=1e-5)
    for step in range(5000):
        opt.lr = schedule.lr_at(step)
        opt.step(grads)
"""

from __future__ import annotations

import math

from ..backend import xp
from ..errors import InvalidInput
from ..validate import is_int

SCHEDULES = ("constant", "step", "cosine")


def _int(name: str, value, minimum: int) -> int:
    if not is_int(value) or value < minimum:
        raise InvalidInput(f"{name}: expected an int >= {minimum}, got {value!r}", field=name)
    return int(value)


def _real(name: str, value, low: float, high: float = math.inf) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float | xp.integer | xp.floating)
    if not (ok and math.isfinite(value) and low <= value <= high):
        raise InvalidInput(
            f"{name}: expected a finite number in [{low:g}, {high:g}], got {value!r}",
            field=name,
        )
    return float(value)


class Schedule:
    """Constant learning rate; the base class of the others. `lr_at(step)` validates `step` >= 0."""

    def __init__(self, base_lr: float) -> None:
        self.base_lr = _real("base_lr", base_lr, 0.0)

    def lr_at(self, step: int) -> float:
        return self._lr(_int("step", step, 0))

    def _lr(self, step: int) -> float:
        return self.base_lr

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class ConstantSchedule(Schedule):
    """lr = base_lr at every step."""


class StepSchedule(Schedule):
    """lr = base_lr * gamma ** (step // step_size), as torch.optim.lr_scheduler.StepLR."""

    def __init__(self, base_lr: float, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(base_lr)
        self.step_size = _int("step_size", step_size, 1)
        self.gamma = _real("gamma", gamma, 0.0)

    def _lr(self, step: int) -> float:
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineSchedule(Schedule):
    """Linear warm-up, then cosine decay from base_lr to min_lr at total_steps (and min_lr after).

    step < W:   lr = base_lr * (step + 1) / W     (W = warmup_steps; the first update is not wasted)
    W <= step:  lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2
                with p = min(1, (step - W) / (total_steps - W))
    With W = 0 this is torch.optim.lr_scheduler.CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)
    for step <= total_steps.
    """

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(base_lr)
        self.total_steps = _int("total_steps", total_steps, 1)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        if self.warmup_steps > self.total_steps:
            raise InvalidInput(
                f"warmup_steps: expected at most total_steps={self.total_steps}, got {warmup_steps}",
                field="warmup_steps"
            )
        self.min_lr = _real("min_lr", min_lr, 0.0, self.base_lr)

    def _lr(self, step: int) -> float:
        W = self.warmup_steps
        if step < W:
            return self.base_lr * (step + 1) / W
        progress = min(1.0, (step - W) / max(1, self.total_steps - W))
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2


def make_schedule(name: str, base_lr: float, *, step_size: int = 1, gamma: float = 0.1, total_steps: int = 1,
                  warmup_steps: int = 0, min_lr: float = 0.0) -> Schedule:
    """Build a schedule by name ("constant", "step" or "cosine"); arguments it does not use are ignored."""
    if name == "constant":
        return ConstantSchedule(base_lr)
    if name == "step":
        return StepSchedule(base_lr, step_size, gamma)
    if name == "cosine":
        return CosineSchedule(base_lr, total_steps, warmup_steps, min_lr)
    raise InvalidInput(f"name: expected one of {SCHEDULES}, got {name!r}", field="name")
