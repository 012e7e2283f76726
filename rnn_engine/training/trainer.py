"""The training loop: steps, LR schedule, clipping, evaluation, early stopping, checkpoints, resume, progress.

Nothing here knows about a particular model kind: `tasks.prepare` gives the model and its objective (batches,
loss, metrics). Progress goes out as `TrainEvent`s through `on_event`. A run is deterministic for its seeds,
and a run resumed from `checkpoint_dir/latest` ends with bit-identical weights to an uninterrupted one: the
checkpoint holds weights, optimizer buffers, step, the carried language-model state, the dropout generator's
state, the best score so far and the history (batches are a pure function of the seed and step).

Checkpoint layout: `checkpoint_dir/latest` (resumable, written every `checkpoint_every` steps, on cancel and
at the end) and `checkpoint_dir/best` (the model at the best validation score). Both are model directories
`load_model` can read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..backend import xp
from ..config import ModelConfig, TrainConfig
from ..errors import Cancelled, FailedPrecondition, IncompatibleModel, InvalidInput
from ..io.checkpoint import load_model, save_model
from ..model import Model
from ..optim.optimizers import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm
from ..optim.schedules import make_schedule
from .tasks import Dataset, prepare


@dataclass
class TrainEvent:
    kind: str  # "step" | "eval" | "checkpoint" | "done" (metrics: the returned model's, of best_step)
    step: int  # optimizer steps completed
    total_steps: int
    epoch: int  # epoch of the last step (0-based)
    train_loss: float | None  # this step's loss ("step"); mean since the last evaluation otherwise
    metrics: dict[str, float] = field(default_factory=dict)  # validation metrics ("eval", "done")
    items_per_sec: float = 0.0  # tokens (language model) or sequences per second (this step, or run average)
    elapsed: float = 0.0  # seconds of training in this run and the runs it resumes
    eta: float = 0.0  # seconds left at the current pace
    checkpoint: str | None = None  # "checkpoint": the directory written
    best_step: int | None = None  # "done": the step whose weights the model has (its best evaluation)


def make_optimizer(tcfg: TrainConfig, params: dict):
    kind, wd = tcfg.optimizer, tcfg.weight_decay
    if kind == "sgd":
        return SGD(params, lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=wd)
    if kind == "adam":
        return Adam(params, lr=tcfg.lr, weight_decay=wd)
    if kind == "adamw":
        return AdamW(params, lr=tcfg.lr, weight_decay=wd)
    if kind == "rmsprop":
        return RMSprop(params, lr=tcfg.lr, alpha=tcfg.rmsprop_alpha, momentum=tcfg.momentum, weight_decay=wd)
    return Adagrad(params, lr=tcfg.lr, weight_decay=wd)


class _Run:
    """Mutable state of one run, and its (de)serialisation into a checkpoint."""

    def __init__(self, model: Model, opt, tcfg: TrainConfig) -> None:
        self.model, self.opt, self.tcfg = model, opt, tcfg
        self.rng = next(iter(model.net.modules.values())).rng  # shared by every module (dropout)
        self.step, self.best, self.best_step, self.bad_evals = 0, None, None, 0
        self.best_weights = None
        self.carry = None
        self.elapsed, self.recent = 0.0, []
        self.stopped = "steps"  # why training ended: "steps" | "early_stopping" | "time_budget"

    def save(self, directory: Path, name: str = "latest") -> Path:
        arrays = {f"optimizer.{k}": v for k, v in self.opt.state_dict()["buffers"].items()}
        if self.carry is not None:
            arrays["carry.h"] = self.carry[0].copy()
            if self.carry[1] is not None:
                arrays["carry.c"] = self.carry[1].copy()
        osd = self.opt.state_dict()
        state = {
            "step": self.step,
            "best": self.best,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "elapsed": self.elapsed,
            "recent": self.recent,
            "rng": self.rng.bit_generator.state,
            "optimizer": {
                "kind": osd["kind"],
                "hyperparameters": osd["hyperparameters"],
                "step": osd["step"],
            },
            "train_config": self.tcfg.to_dict(),
        }
        return save_model(self.model, directory / name, extra_arrays=arrays, checkpoint=state)

    def restore(self, directory: Path) -> None:
        model = self.model
        saved, extras, manifest = load_model(directory / "latest", model.task, with_extras=True)
        state = manifest.get("checkpoint")
        if not isinstance(state, dict):
            raise IncompatibleModel(f"{directory / 'latest'}: a saved model, not a training checkpoint")
        if (
            saved.config != model.config
            or manifest["tokenizer"] != (model.tokenizer.to_dict() if model.tokenizer else None)
            or saved.labels != model.labels
        ):
            raise IncompatibleModel("resume: the checkpoint was trained with another model config or dataset")
        if state["train_config"] != self.tcfg.to_dict():
            raise InvalidInput(
                "train_config: resume needs the settings the checkpoint was trained with",
                field="train_config",
            )
        model.net.load_arrays(saved.params)
        model.history, model.metrics = saved.history, saved.metrics
        buffers = {k[len("optimizer.") :]: v for k, v in extras.items() if k.startswith("optimizer.")}
        self.opt.load_state_dict({**state["optimizer"], "buffers": buffers})
        if "carry.h" in extras:
            self.carry = (extras["carry.h"], extras.get("carry.c"))
        self.rng.bit_generator.state = state["rng"]
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        self.bad_evals, self.elapsed, self.recent = state["bad_evals"], state["elapsed"], state["recent"]
        if self.best_step is not None:
            self.best_weights = {
                k: v.copy() for k, v in load_model(directory / "best", model.task).params.items()
            }


def _improved(value: float, best: float | None, higher: bool) -> bool:
    return best is None or (value > best if higher else value < best)


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    dataset: Dataset,
    *,
    on_event: Callable[[TrainEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> Model:
    """Train a new model (or resume `checkpoint_dir/latest`); returns it with its best validation weights."""
    model, objective = prepare(model_config, train_config, dataset)
    tcfg = train_config
    for name, fn in (("on_event", on_event), ("should_stop", should_stop)):
        if fn is not None and not callable(fn):
            raise InvalidInput(f"{name}: expected a callable or None, got {fn!r}", field=name)
    if resume and checkpoint_dir is None:
        raise InvalidInput("resume: needs checkpoint_dir", field="resume")
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    total = tcfg.steps or tcfg.epochs * objective.steps_per_epoch
    opt = make_optimizer(tcfg, model.params)
    sched = make_schedule(
        tcfg.schedule,
        tcfg.lr,
        step_size=tcfg.step_size,
        gamma=tcfg.gamma,
        total_steps=total,
        warmup_steps=min(tcfg.warmup_steps, total),
    )
    run = _Run(model, opt, tcfg)
    if resume:
        run.restore(ckpt)
    emit = on_event or (lambda event: None)
    start_time, start_elapsed = time.perf_counter(), run.elapsed
    first_step, seen = run.step, [0]  # items trained on in this run

    def event(kind: str, loss, metrics=None, rate: float | None = None, path=None) -> TrainEvent:
        run.elapsed = start_elapsed + time.perf_counter() - start_time
        if rate is None:  # "eval", "checkpoint", "done": the average over this run
            rate = seen[0] / max(time.perf_counter() - start_time, 1e-9)
        done = max(run.step - first_step, 1)
        eta = (total - run.step) * (time.perf_counter() - start_time) / done
        return TrainEvent(
            kind,
            run.step,
            total,
            objective.epoch_of(max(run.step - 1, 0)),
            loss,
            dict(metrics or {}),
            rate,
            run.elapsed,
            eta,
            path,
        )

    stopped_early = out_of_time = False
    while run.step < total and not stopped_early and not out_of_time:
        if should_stop is not None and should_stop():
            if ckpt is not None:
                run.save(ckpt)
            raise Cancelled(f"training cancelled at step {run.step} of {total}")
        t0 = time.perf_counter()
        opt.lr = sched.lr_at(run.step)
        model.net.train()
        loss, items, run.carry = objective.train_step(objective.batch(run.step), run.carry)
        if not math.isfinite(loss):
            raise FailedPrecondition(f"training diverged: loss is {loss} at step {run.step}; lower lr")
        grads = model.net.grads()
        if tcfg.clip_norm > 0:
            clip_grad_norm(grads, tcfg.clip_norm)
        opt.step(grads)
        run.step += 1
        run.recent.append(loss)
        seen[0] += items
        emit(event("step", loss, rate=items / max(time.perf_counter() - t0, 1e-9)))
        if run.step % tcfg.eval_every == 0 or run.step == total:
            stopped_early = _evaluate(run, objective, emit, event, ckpt)
        if ckpt is not None and tcfg.checkpoint_every and run.step % tcfg.checkpoint_every == 0:
            emit(event("checkpoint", None, path=str(run.save(ckpt))))
        out_of_time = bool(tcfg.time_budget) and (
            start_elapsed + time.perf_counter() - start_time >= tcfg.time_budget
        )
    if out_of_time and run.step < total and not stopped_early:
        if not model.history or model.history[-1]["step"] != run.step:  # the last weights get a say too
            _evaluate(run, objective, emit, event, ckpt)
        run.stopped = "time_budget"
    elif stopped_early:
        run.stopped = "early_stopping"
    return _finish(run, objective, emit, event, ckpt, total)


def _evaluate(run: _Run, objective, emit, event, ckpt) -> bool:
    """Validation pass; records history, keeps the best weights; returns True to stop early."""
    model = run.model
    model.net.eval()
    metrics = objective.evaluate()
    train_loss = float(xp.mean(run.recent)) if run.recent else None
    run.recent = []
    model.history.append(
        {"step": run.step, "epoch": objective.epoch_of(run.step - 1), "train_loss": train_loss, **metrics}
    )
    emit(event("eval", train_loss, metrics))
    if not metrics:
        return False
    score = metrics[objective.main_metric]
    if _improved(score, run.best, objective.higher_is_better):
        run.best, run.best_step, run.bad_evals = score, run.step, 0
        run.best_weights = {k: v.copy() for k, v in model.params.items()}
        model.metrics = dict(metrics)
        if ckpt is not None:
            _stamp(run, objective)
            emit(event("checkpoint", None, path=str(save_model(model, ckpt / "best"))))
        return False
    run.bad_evals += 1
    return bool(run.tcfg.patience and run.bad_evals >= run.tcfg.patience)


def _stamp(run: _Run, objective) -> None:
    run.model.trained = True
    run.model.training = {
        "train_config": run.tcfg.to_dict(),
        "steps": run.step,
        "best_step": run.best_step,
        "elapsed": run.elapsed,
        "stopped": run.stopped,
    }
    baseline = getattr(objective, "baseline", lambda: None)()
    if baseline is not None:  # the best n-gram on the same validation tokens (models/objectives.py)
        run.model.training["ngram_baseline"] = dict(baseline)


def _finish(run: _Run, objective, emit, event, ckpt, total: int) -> Model:
    model = run.model
    if ckpt is not None:
        run.save(ckpt)
    if run.best_weights is not None:
        model.net.load_arrays(run.best_weights)
    _stamp(run, objective)
    model.net.eval()
    done = event("done", model.history[-1]["train_loss"] if model.history else None, model.metrics)
    done.best_step = run.best_step if run.best_step is not None else run.step
    emit(done)
    return model
