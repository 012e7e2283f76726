"""`rnnctl models list|show|delete`: stored models."""

from __future__ import annotations

import click

from ..context import json_option, pass_app
from ..types import ModelInfo
from ._common import ngram_note, quality_metrics, record

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
    app.console.table(["", ""], show_rows(m), title=f"model {m.name}")


TEXT_TASKS = ("language_model", "classification", "tagging", "one_to_many", "seq2seq")
LABEL_TASKS = ("classification", "tagging", "one_to_many")


def _num(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def show_rows(m: ModelInfo) -> list[tuple[str, str]]:
    """`models show` as (field, value) rows: only what means something for the model's task."""
    spec, details = m.spec, m.details
    run = details.get("training") if isinstance(details.get("training"), dict) else {}
    rows = [("task", m.task), ("cell", _cell(m))]
    arch = [("hidden size", spec.get("hidden_size")), ("layers", spec.get("num_layers"))]
    if m.task in TEXT_TASKS:
        arch += [("embedding dim", spec.get("embedding_dim")), ("tokenizer", details.get("tokenizer")),
                 ("vocabulary", f"{m.vocab_size:,} tokens")]
    else:
        arch += [("features", m.input_size), ("window", details.get("window"))]
    if spec.get("bidirectional"):
        arch.append(("bidirectional", "yes"))
    for key in ("dropout", "forget_bias", "init"):
        if spec.get(key) not in (None, 0, 0.0, "default"):
            arch.append((key.replace("_", " "), spec[key]))
    rows += [(k, _num(v)) for k, v in arch if v not in (None, "")]
    rows.append(("parameters", f"{m.parameter_count:,}"))
    if m.task in LABEL_TASKS:
        more = f", ... ({len(m.labels) - 20} more)" if len(m.labels) > 20 else ""
        shown = ", ".join(m.labels[:20]) + more
        rows.append((f"labels ({len(m.labels)})", shown))
    rows += [(f"validation {k}", _num(v)) for k, v in quality_metrics(m.metrics)]
    if m.metrics.get("validation_items"):
        unit = {"language_model": "tokens", "forecasting": "values"}.get(m.task, "sequences")
        rows.append(("validated on", f"{m.metrics['validation_items']:,.0f} {unit}"))
    note = ngram_note(m.metrics)
    if note:
        rows.append(("baseline", note))
    settings = m.training
    trained = [("steps", run.get("steps")), ("best step", run.get("best_step")),
               ("stopped by", run.get("stopped")), ("optimizer", settings.get("optimizer")),
               ("learning rate", settings.get("learning_rate")), ("batch size", settings.get("batch_size")),
               ("training time", f"{run['elapsed']:.1f} s" if isinstance(run.get("elapsed"), float)
                else None)]
    if m.task == "language_model":
        trained.insert(5, ("bptt window", settings.get("seq_len")))
    rows += [(k, _num(v)) for k, v in trained if v not in (None, "")]
    rows += [(k, v) for k, v in (("job", m.job_id), ("created", m.created.strftime("%Y-%m-%d %H:%M:%S")
                                                     if m.created else "")) if v]
    return rows


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
