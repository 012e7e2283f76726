"""Helpers shared by rnnctl commands: key=value options, JSON-able records, following a job's events."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click

from ..context import EXIT_FAILURE, EXIT_INTERRUPTED, AppContext
from ..errors import DeadlineExceeded
from ..types import JobEvent


def parse_options(pairs: tuple[str, ...], option: str) -> dict[str, Any]:
    """("lr=0.01", "name=x") -> {"lr": 0.01, "name": "x"}: values are JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def record(obj: Any) -> dict[str, Any]:
    """A dataclass record as a JSON-able dict (datetimes as ISO strings, arrays as lists)."""
    data = dataclasses.asdict(obj)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4g}"


# metrics that describe the report rather than the model's quality; shown in their own words, not listed
REPORT_METRICS = ("validation_items", "ngram_perplexity", "ngram_order", "perplexity_vs_ngram")


def quality_metrics(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """The validation metrics worth listing, sorted: without the report's own numbers, and without
    bits_per_token when bits_per_char says the same (a character model)."""
    same = "bits_per_char" in metrics
    return [(k, v) for k, v in sorted(metrics.items())
            if k not in REPORT_METRICS and not (same and k == "bits_per_token")]


def ngram_note(metrics: dict[str, float]) -> str | None:
    """"best n-gram (order 5) perplexity 3.12; the network's is 0.82x that" when the run reported one."""
    if "ngram_perplexity" not in metrics:
        return None
    order = metrics.get("ngram_order")
    ratio = metrics.get("perplexity_vs_ngram")
    which = f" (order {order:.0f})" if order else ""
    text = f"best n-gram{which} perplexity {_fmt(metrics['ngram_perplexity'])}"
    return text + (f"; the network's is {ratio:.3g}x that" if ratio is not None else "")


# the validation metric that means most for each task, first found wins, with its short progress-line name
PROGRESS_METRICS = (("accuracy", "acc"), ("token_accuracy", "tok acc"), ("bits_per_char", "bpc"),
                    ("bits_per_token", "bpt"), ("mae", "mae"), ("perplexity", "ppl"))


def describe(loss: float, seen: dict[str, float], rate: float | None, width: int | None = None) -> str:
    """The stats column of the progress bar, at most `width` characters: training loss, validation loss,
    the task's main metric, throughput, then a second metric; fields that do not fit are dropped whole
    (numbers are never cut). A character model shows bits per character, not the same number twice."""
    fields = [f"loss {_fmt(loss)}"]
    if "validation_loss" in seen:
        fields.append(f"val {_fmt(seen['validation_loss'])}")
    metrics = [(short, seen[k]) for k, short in PROGRESS_METRICS if k in seen]
    if "bits_per_char" in seen:  # bits per token is the same number for a char tokenizer
        metrics = [(s, v) for s, v in metrics if s != "bpt"]
    if metrics:
        fields.append(f"{metrics[0][0]} {_fmt(metrics[0][1])}")
    if "ngram_perplexity" in seen and "perplexity_vs_ngram" in seen:
        fields.append(f"vs n-gram {seen['perplexity_vs_ngram']:.2f}x")
    if rate:
        fields.append(f"{rate:.1f} steps/s")
    fields += [f"{s} {_fmt(v)}" for s, v in metrics[1:2]]
    out = ""
    for f in fields:
        candidate = f"{out}  {f}" if out else f
        if width is not None and len(candidate) > width:
            if not out:  # not even the loss fits: show as much of the field names as possible, never numbers
                return f[:width] if width >= len(f.split()[-1]) else ""
            continue
        out = candidate
    return out


def follow(app: AppContext, events: Iterator[JobEvent], *, on_interrupt: str = "ask") -> JobEvent | None:
    """Show a job's events with a live progress bar; return the last event (None if detached).

    Ctrl-C asks whether to cancel the job or detach from it (`on_interrupt`: "ask" | "cancel" | "detach";
    "ask" detaches when stdin is not a terminal).
    """
    console, last, job_id = app.console, None, None
    first_step: tuple[int, float] | None = None
    seen: dict[str, float] = {}  # the latest validation loss, metrics and throughput
    try:
        first = next(events, None)  # no progress bar at all when the call fails before any event
        if first is None:
            return None
        events = itertools.chain([first], events)
        with console.progress() as progress:
            bar = progress.add_task("training", total=None, stats="starting")
            fixed = console.progress_fixed_width(progress)
            for ev in events:
                last, job_id = ev, ev.job_id
                if ev.kind == "log" and ev.message:
                    progress.console.print(ev.message, markup=False, style="dim")
                if ev.kind == "state":
                    progress.update(bar, description=ev.state or "training")
                if ev.kind in ("progress", "evaluation"):  # older servers sent evaluations as progress
                    seen.update(ev.metrics)
                    val = ev.validation_loss if ev.validation_loss is not None else ev.metrics.get("loss")
                    if val is not None:
                        seen["validation_loss"] = val
                    # rate from the events' own times, so replayed events (jobs watch) show the real pace
                    now = ev.time.timestamp() if ev.time else time.monotonic()
                    first_step = first_step or (ev.step, now)
                    rate = (ev.step - first_step[0]) / (now - first_step[1]) if now > first_step[1] else None
                    room = progress.console.width - fixed(ev.state or "training", ev.total_steps)
                    progress.update(bar, completed=ev.step, total=ev.total_steps or None,
                                    stats=describe(ev.loss, seen, rate, max(room, 0)))
        return last
    except KeyboardInterrupt:
        return _interrupted(app, job_id, on_interrupt)


def _interrupted(app: AppContext, job_id: str | None, on_interrupt: str) -> None:
    console = app.console
    if job_id is None:
        console.abort("interrupted before the server reported a job", EXIT_INTERRUPTED)
    choice = on_interrupt
    if choice == "ask":
        choice = console.choose(f"cancel job {job_id} or detach from it?", ["cancel", "detach"], "detach") \
            if sys.stdin.isatty() else "detach"
    if choice == "cancel":
        job = app.client.cancel_job(job_id)
        console.info(f"asked job {job_id} to stop; waiting for it to write its checkpoint...")
        try:
            final = [e for e in app.client.watch_job(job_id, from_sequence=job.event_count, timeout=60)
                     if e.is_final]
            state = final[-1].state if final else app.client.get_job(job_id).state
        except DeadlineExceeded:
            state = "still stopping"
        hint = f"resume it with `rnnctl train --resume {job_id}`" if state == "cancelled" else None
        console.abort(f"interrupted: job {job_id} {state}", EXIT_INTERRUPTED, hint=hint)
    console.abort(f"detached: job {job_id} keeps running", EXIT_INTERRUPTED,
                  hint=f"follow it with `rnnctl jobs watch {job_id}`, "
                       f"stop it with `rnnctl jobs cancel {job_id}`")


def finish(app: AppContext, job_id: str) -> None:
    """After the stream ends: print the job's outcome (or its JSON) and fail unless it succeeded."""
    job = app.client.get_job(job_id)
    console = app.console
    if console.json_mode:
        console.json(record(job))
    if job.state != "succeeded":
        reason = f": {job.message}" if job.message else ""
        console.abort(f"job {job.job_id} ended {job.state or 'in an unknown state'}{reason}", EXIT_FAILURE,
                      hint=f"resume it with `rnnctl train --resume {job.job_id}`" if job.resumable else None)
    metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in quality_metrics(job.metrics))
    items = job.metrics.get("validation_items")
    unit = {"language_model": "tokens", "forecasting": "values"}.get(job.task, "sequences")
    over = f" over {items:,.0f} {unit}" if items else ""
    console.success(f"trained model {job.model!r} (job {job.job_id}) for {job.step} steps: "
                    f"training loss {_fmt(job.last_loss)}"
                    + (f"; validation{over} {metrics}" if metrics else ""))
    note = ngram_note(job.metrics)
    if note:
        console.print(note)
