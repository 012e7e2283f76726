"""`rnnctl predict`: run a model on a batch of sequences given on the command line or in a file."""

from __future__ import annotations

import re

import click

from ..context import json_option, pass_app
from ..types import Prediction
from ._common import record

_SPLIT = re.compile(r"[,\s]+")


def parse_numbers(raw: str, what: str, kind: type = float) -> list:
    """"1.5, 2 2.5" -> [1.5, 2.0, 2.5]: numbers separated by commas or spaces."""
    items = [x for x in _SPLIT.split(raw.strip()) if x]
    try:
        return [kind(x) for x in items]
    except ValueError:
        name = "integers" if kind is int else "numbers"
        raise click.BadParameter(f"expected {name} separated by commas or spaces, got {raw!r}",
                                 param_hint=what) from None


def _parse(raw: str, kind: str) -> object:
    """One input line as text, token ids ("1,2,3") or float values ("0.5 0.7 0.1")."""
    if kind == "text":
        return raw
    return parse_numbers(raw, "INPUTS", int if kind == "ids" else float)


def _scores(scores) -> str:
    return "  ".join(f"{s.label!r} {s.probability:.3f}" for s in scores)


def _summary(p: Prediction) -> str:
    if p.task == "language_model" and p.top_k:
        return f"next: {_scores(p.top_k[-1])}"
    if p.text or p.token_ids:
        return p.text or " ".join(map(str, p.token_ids))
    if p.values is not None and not any(p.top_k):
        return " ".join(f"{v:.6g}" for v in p.values.ravel())
    if len(p.top_k) == 1:
        return "  ".join(f"{s.label} ({s.probability:.3f})" for s in p.top_k[0])
    if p.top_k and p.tokens:
        return " ".join(f"{tok}/{lab}" for tok, lab in zip(p.tokens, p.labels, strict=False))
    if p.top_k:
        return " ".join(p.labels)
    if p.distribution is not None:
        return f"distribution of shape {p.distribution.shape}"
    return ""


@click.command("predict")
@click.argument("model")
@click.argument("inputs", nargs=-1)
@click.option("-f", "--file", "input_file", type=click.File("r"),
              help="Read one input sequence per line ('-' for stdin).")
@click.option("--ids", "kind", flag_value="ids", help="Inputs are token ids, e.g. 3,1,4.")
@click.option("--values", "kind", flag_value="values", help="Inputs are numbers, e.g. 1.5,2,2.5.")
@click.option("--text", "kind", flag_value="text", default=True, help="Inputs are text (default).")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--output", type=click.Choice(["top_k", "distribution", "values"]),
              help="What to return (default: the task's natural output).")
@json_option
@pass_app
def command(app, model: str, inputs: tuple[str, ...], input_file, kind: str, top_k: int,
            output: str | None) -> None:
    """Predict with MODEL on INPUTS (or the lines of --file)."""
    lines = list(inputs)
    if input_file is not None:
        lines += [line.rstrip("\n") for line in input_file if line.strip()]
    if not lines:
        raise click.UsageError("expected at least one input (arguments or --file)")
    predictions = app.client.predict(model, [_parse(x, kind) for x in lines], top_k=top_k, output=output)
    if app.console.json_mode:
        app.console.json([{"input": x, **record(p)} for x, p in zip(lines, predictions, strict=True)])
        return
    for x, p in zip(lines, predictions, strict=True):
        shown = x if len(x) <= 40 else x[:37] + "..."
        app.console.print(f"{shown}  ->  {_summary(p)}")
