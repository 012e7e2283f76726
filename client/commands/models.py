"""`rnnctl models list|show|delete`: stored models."""

from __future__ import annotations

import click

from ..context import json_option, pass_app
from ..types import ModelInfo
from ._common import record

TASKS = ("language_model", "classification", "tagging", "forecasting", "one_to_many", "seq2seq")


def _cell(m: ModelInfo) -> str:
    cell = str(m.spec.get("cell", ""))
    return f"rnn_{m.spec['nonlinearity']}" if cell == "rnn" and m.spec.get("nonlinearity") else cell


MAIN_METRICS = ("accuracy", "loss", "mse", "perplexity")


def _metrics(m: ModelInfo, limit: int = 2) -> str:
    """The main validation metrics, e.g. "accuracy 0.93 loss 0.21"."""
    keys = [k for k in MAIN_METRICS if k in m.metrics] or sorted(m.metrics)
    return " ".join(f"{k} {m.metrics[k]:.4g}" for k in keys[:limit])


@click.group("models")
def command() -> None:
    """List, describe and delete stored models."""


@command.command("list")
@click.option("--task", type=click.Choice(TASKS), help="Only models of this task.")
@json_option
@pass_app
def list_models(app, task: str | None) -> None:
    """List models by name."""
    models = app.client.list_models(task=task)
    if app.console.json_mode:
        app.console.json([record(m) for m in models])
        return
    if not models:
        app.console.info("no models; train one with `rnnctl train DATA`")
        return
    app.console.table(
        ["name", "task", "cell", "hidden", "parameters", "metrics", "created"],
        [(m.name, m.task, _cell(m), m.spec.get("hidden_size", ""), f"{m.parameter_count:,}", _metrics(m),
          m.created.strftime("%Y-%m-%d %H:%M:%S") if m.created else "") for m in models])


@command.command("show")
@click.argument("model")
@json_option
@pass_app
def show(app, model: str) -> None:
    """Describe MODEL: task, architecture, sizes, labels, metrics, training settings."""
    m = app.client.get_model(model)
    if app.console.json_mode:
        app.console.json(record(m))
        return
    app.console.mapping({
        "name": m.name, "task": m.task, "cell": _cell(m),
        "spec": {k: v for k, v in m.spec.items() if k != "cell"},
        "parameters": f"{m.parameter_count:,}", "vocab size": m.vocab_size,
        "input size": m.input_size, "output size": m.output_size,
        "labels": m.labels if len(m.labels) <= 20 else [*m.labels[:20], f"... {len(m.labels) - 20} more"],
        "metrics": {k: round(v, 6) for k, v in sorted(m.metrics.items())},
        "training": m.training, "job": m.job_id,
        "created": m.created.isoformat() if m.created else "",
    }, title=f"model {m.name}")


@command.command("delete")
@click.argument("model")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def delete(app, model: str, yes: bool) -> None:
    """Delete MODEL from the server."""
    if not yes and not app.console.confirm(f"delete model {model!r}?"):
        app.console.abort("not deleted", 1)
    name = app.client.delete_model(model)
    if app.console.json_mode:
        app.console.json({"deleted": name})
    else:
        app.console.success(f"deleted model {name!r}")
