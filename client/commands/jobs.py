"""`rnnctl jobs list|watch|cancel`: training jobs on the server."""

from __future__ import annotations

import click

from ..context import json_option, pass_app
from ._common import finish, follow, record

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")


@click.group("jobs")
def command() -> None:
    """List, follow and cancel training jobs."""


@command.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--model", help="Only jobs training this model.")
@json_option
@pass_app
def list_jobs(app, state: str | None, model: str | None) -> None:
    """List jobs, newest first."""
    jobs = app.client.list_jobs(state=state, model=model)
    if app.console.json_mode:
        app.console.json([record(j) for j in jobs])
        return
    if not jobs:
        app.console.info("no jobs")
        return
    app.console.table(
        ["job", "model", "task", "state", "step", "loss", "created"],
        [(j.job_id, j.model, j.task, j.state, f"{j.step}/{j.total_steps}" if j.total_steps else j.step,
          f"{j.last_loss:.4g}", j.created.strftime("%Y-%m-%d %H:%M:%S") if j.created else "") for j in jobs])


@command.command("watch")
@click.argument("job_id")
@click.option("--from", "from_sequence", type=click.IntRange(min=0), default=0, show_default=True,
              help="First event to replay.")
@click.option("--on-interrupt", type=click.Choice(["ask", "cancel", "detach"]), default="detach",
              show_default=True, help="What Ctrl-C does to the job.")
@json_option
@pass_app
def watch(app, job_id: str, from_sequence: int, on_interrupt: str) -> None:
    """Follow JOB_ID's progress until it ends (replaying what already happened)."""
    follow(app, app.client.watch_job(job_id, from_sequence=from_sequence), on_interrupt=on_interrupt)
    finish(app, job_id)


@command.command("cancel")
@click.argument("job_id")
@json_option
@pass_app
def cancel(app, job_id: str) -> None:
    """Ask JOB_ID to stop; it writes a checkpoint and ends cancelled."""
    job = app.client.cancel_job(job_id)
    if app.console.json_mode:
        app.console.json(record(job))
    else:
        app.console.success(f"asked job {job.job_id} to stop (state now {job.state})")
