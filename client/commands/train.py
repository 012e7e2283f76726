"""`rnnctl train`: start a training job on a data file and follow it with a live progress bar."""

from __future__ import annotations

from pathlib import Path

import click

from ..context import json_option, pass_app
from ..convert import CELLS
from ._common import finish, follow, parse_options

TASKS = ("language_model", "classification", "tagging", "forecasting", "one_to_many", "seq2seq")


@click.command("train")
@click.argument("data", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-n", "--name", "model", help="Name of the model to create (default: the data file's stem).")
@click.option("--task", type=click.Choice(TASKS), default="language_model", show_default=True)
@click.option("--format", "data_format", type=click.Choice(["text", "tsv", "csv", "jsonl"]),
              help="Data file format (default: from the suffix, else from the task).")
@click.option("--data-option", "data_options", multiple=True, metavar="KEY=VALUE",
              help="Dataset loading option, e.g. column=Passengers (repeatable).")
@click.option("--cell", type=click.Choice(CELLS), help="Recurrent cell (default: the engine's, lstm).")
@click.option("--hidden-size", type=click.IntRange(min=1))
@click.option("--num-layers", type=click.IntRange(min=1))
@click.option("--embedding-dim", type=click.IntRange(min=1))
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True))
@click.option("--bidirectional/--unidirectional", default=None, help="Classification and tagging only.")
@click.option("--tokenizer", type=click.Choice(["char", "word", "byte"]))
@click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
              help="Any other ModelConfig setting, e.g. init=orthogonal (repeatable).")
@click.option("--steps", "max_steps", type=click.IntRange(min=1), help="Optimizer steps.")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True))
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw", "adagrad", "rmsprop"]))
@click.option("--weight-decay", type=click.FloatRange(min=0))
@click.option("--clip-grad-norm", type=click.FloatRange(min=0))
@click.option("--seq-len", type=click.IntRange(min=2), help="Truncated-BPTT window (language models).")
@click.option("--seed", type=click.IntRange(min=0))
@click.option("--validation-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--checkpoint-every", type=click.IntRange(min=1))
@click.option("--train-option", "training_options", multiple=True, metavar="KEY=VALUE",
              help="Any other TrainConfig setting, e.g. schedule=cosine or time_budget=600 (seconds of "
                   "training, then the best model is saved) (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace a model of the same name.")
@click.option("--resume", "resume_job_id", metavar="JOB_ID", help="Continue a stopped job.")
@click.option("--detach", is_flag=True, help="Start the job and return at once, printing its id.")
@click.option("--on-interrupt", type=click.Choice(["ask", "cancel", "detach"]), default="ask",
              show_default=True, help="What Ctrl-C does to the job.")
@json_option
@pass_app
def command(app, data: Path | None, model: str | None, data_options, model_options, training_options,
            detach: bool, on_interrupt: str, resume_job_id: str | None, **settings) -> None:
    """Train a model on a data file, with a live progress bar.

    DATA is plain text (language models), TSV text<TAB>label rows (classification, one-to-many, seq2seq),
    JSONL {"tokens", "tags"} lines (tagging) or a CSV series (forecasting).
    """
    if resume_job_id is None and data is None:
        raise click.UsageError("expected a DATA file (or --resume JOB_ID)")
    if resume_job_id is None:
        model = model or data.stem
    events = app.client.train(
        model or "", path=data, resume_job_id=resume_job_id, data_options=parse_options(data_options,
                                                                                       "--data-option"),
        model_options=parse_options(model_options, "--model-option"),
        training_options=parse_options(training_options, "--train-option"), **settings)
    if detach:
        first = next(iter(events))
        if app.console.json_mode:
            app.console.json({"job_id": first.job_id, "model": model})
        else:
            app.console.print(first.job_id)
            app.console.info(f"job {first.job_id} started; follow it with `rnnctl jobs watch {first.job_id}`")
        return
    last = follow(app, events, on_interrupt=on_interrupt)
    if last is None:
        app.console.abort("the server ended the training stream without any event")
    finish(app, last.job_id)
