"""`rnnctl plot`: training and validation curves of a model, drawn to a PNG with matplotlib (Agg).

matplotlib is the client's optional `plot` extra (`pip install 'rnn-service[plot]'`), not a server dependency:
the server image does not carry it, and without it the command says how to install it.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import click

from ..context import json_option, pass_app
from ..files import atomic_write

STEP_KEYS = ("step", "steps", "global_step")
TRAIN_KEYS = ("train_loss", "training_loss")
VAL_KEYS = ("validation_loss", "val_loss", "valid_loss")
MAIN_METRICS = ("accuracy", "macro_f1", "token_accuracy", "perplexity", "mse", "mae")
PLOT_INSTALL_HINT = ("install the client's plot extra: pip install 'rnn-service[plot]' "
                     "(or pip install matplotlib)")
SKIP = {"epoch", "lr", "time", "elapsed", "eta", "loss", "validation_items", *STEP_KEYS, *TRAIN_KEYS,
        *VAL_KEYS}


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def history_from_details(details: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's training history (engine Model.history rows: step, epoch, train_loss and the validation
    metrics, where "loss" is the validation loss), if the server included it in ModelInfo.details."""
    history = details.get("history")
    return [row for row in history if isinstance(row, dict)] if isinstance(history, list) else []


def history_from_job(client, job_id: str) -> list[dict[str, Any]]:
    """Rebuild the history from the job's replayed progress events."""
    rows = []
    for ev in client.watch_job(job_id):
        if ev.kind not in ("progress", "evaluation"):
            continue
        if ev.kind == "progress" and ev.validation_loss is None and not ev.metrics:  # a step: its own loss
            rows.append({"step": ev.step, "train_loss": ev.loss})
        else:  # an evaluation: its loss field is the mean training loss since the last one, not plotted
            rows.append({**ev.metrics, "step": ev.step, "validation_loss": ev.validation_loss})
    return rows


def curves(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """{"train_loss": [(step, value)], "validation_loss": [...], "<metric>": [...]} from history rows.

    In a row that has a training loss, a bare "loss" is the validation loss (the engine's convention)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows):
        step = _first(row, STEP_KEYS)
        x = float(i) if step is None else step
        train = _first(row, TRAIN_KEYS)
        val = _first(row, VAL_KEYS)
        if val is None and train is not None:
            val = _first(row, ("loss",))
        if train is None and val is None:
            train = _first(row, ("loss",))
        for name, y in (("train_loss", train), ("validation_loss", val)):
            if y is not None:
                out.setdefault(name, []).append((x, y))
        for key in row:
            if key not in SKIP and "per_sec" not in key and (y := _first(row, (key,))) is not None:
                out.setdefault(key, []).append((x, y))
    return out


def matplotlib_available() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        return False


def draw(series: dict[str, list[tuple[float, float]]], title: str, path: Path) -> None:
    """Loss curves on the left, other metrics (if any) on the right; written atomically to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    others = [k for k in series if k not in ("train_loss", "validation_loss")]
    metrics = [k for k in MAIN_METRICS if k in others][:1] or others[:1]  # one metric: scales differ
    fig = Figure(figsize=(10 if metrics else 6, 4))
    axes = fig.subplots(1, 2 if metrics else 1, squeeze=False)[0]
    for name, label in (("train_loss", "training"), ("validation_loss", "validation")):
        if name in series:
            xs, ys = zip(*series[name], strict=True)
            axes[0].plot(xs, ys, label=label, marker="o" if len(xs) < 20 else None)
    axes[0].set(xlabel="step", ylabel="loss", title=title)
    axes[0].legend()
    for name in metrics:
        xs, ys = zip(*series[name], strict=True)
        axes[1].plot(xs, ys, marker="o" if len(xs) < 20 else None)
        axes[1].set(xlabel="step", ylabel=name, title=f"validation {name}")
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)


@click.command("plot")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="PNG file to write (default: MODEL.png).")
@json_option
@pass_app
def command(app, model: str, output: Path | None) -> None:
    """Plot MODEL's training and validation curves to a PNG."""
    if not matplotlib_available():
        app.console.abort("rnnctl plot needs matplotlib, which is not installed", hint=PLOT_INSTALL_HINT)
    output = output or Path(f"{model}.png")
    if not output.parent.is_dir():
        raise click.BadParameter(f"expected a file in an existing directory, got {str(output)!r}",
                                 param_hint="--output")
    info = app.client.get_model(model)
    rows = history_from_details(info.details)
    if not rows and info.job_id:
        rows = history_from_job(app.client, info.job_id)
    series = curves(rows)
    if "train_loss" not in series and "validation_loss" not in series:
        app.console.abort(f"model {model!r} has no training history to plot",
                          hint="models trained by this server record it; imported ones may not")
    cell = info.spec.get("cell", "")
    draw(series, f"{model} ({info.task}, {cell})", output)
    if app.console.json_mode:
        points = {k: len(v) for k, v in series.items()}
        app.console.json({"model": model, "path": str(output), "points": points})
    else:
        app.console.success(f"wrote {output} ({sum(len(v) for v in series.values())} points)")
