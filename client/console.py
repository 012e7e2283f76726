"""The one place rnnctl writes to the terminal: messages, tables, JSON, streamed text, progress, abort()."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console as RichConsole
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def _jsonable(value: Any) -> Any:
    """Fallback for json.dumps: NumPy arrays and scalars, dataclass-like objects, paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return str(value)


class Console:
    """Terminal output for one rnnctl invocation; human text on stdout, diagnostics on stderr.

    Args:
        json_mode: when True, commands print one JSON document on stdout and nothing else there.
        verbose: when True, `debug()` messages and tracebacks of unexpected errors are shown.
    """

    def __init__(self, *, json_mode: bool = False, verbose: bool = False) -> None:
        self.json_mode = json_mode
        self.verbose = verbose
        # file=None: rich looks up sys.stdout/sys.stderr on every write (so click's CliRunner captures it).
        self.out = RichConsole(highlight=False, soft_wrap=True)
        self.err = RichConsole(stderr=True, highlight=False, soft_wrap=True)

    # -- messages ---------------------------------------------------------------------------------------
    def print(self, text: str = "", *, style: str | None = None) -> None:
        """Plain human output on stdout (suppressed in --json mode, where stdout holds only the JSON)."""
        if not self.json_mode:
            self.out.print(escape(text), style=style)

    def success(self, text: str) -> None:
        self.print(text, style="green")

    def info(self, text: str) -> None:
        """Status messages go to stderr so that stdout stays clean for data."""
        self.err.print(escape(text), style="cyan")

    def warn(self, text: str) -> None:
        self.err.print(f"warning: {escape(text)}", style="yellow")

    def error(self, text: str) -> None:
        self.err.print(f"error: {escape(text)}", style="bold red")

    def debug(self, text: str) -> None:
        if self.verbose:
            self.err.print(escape(text), style="dim")

    def abort(self, message: str, code: int = 1, *, hint: str | None = None) -> NoReturn:
        """Leave the command with a readable message (and what to do next) and a non-zero exit code."""
        self.error(message)
        if hint:
            self.err.print(escape(hint), style="yellow")
        raise click.exceptions.Exit(code)

    # -- data -------------------------------------------------------------------------------------------
    def json(self, obj: Any) -> None:
        """One JSON document on stdout (used by every command under --json)."""
        click.echo(json.dumps(obj, indent=2, default=_jsonable))

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
              title: str | None = None) -> None:
        table = Table(title=title, show_edge=False, header_style="bold")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(escape("" if v is None else str(v)) for v in row))
        if not self.json_mode:
            self.out.print(table)

    def mapping(self, values: Mapping[str, Any], *, title: str | None = None) -> None:
        """Key/value pairs, one per line (nested mappings are shown as compact JSON)."""
        if title:
            self.print(title, style="bold")
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            if isinstance(value, Mapping | list | tuple):
                value = json.dumps(value, default=_jsonable)
            self.print(f"{key:<{width}}  {value}")

    def stream(self, text: str) -> None:
        """Write text as it arrives (generated tokens): no newline, no markup, flushed immediately."""
        if not self.json_mode:
            sys.stdout.write(text)
            sys.stdout.flush()

    # -- progress ---------------------------------------------------------------------------------------
    def progress(self) -> Progress:
        """A training progress bar on stderr: step counter, bar, loss/metric/throughput, elapsed, ETA."""
        return Progress(  # stats last, so a narrow terminal truncates them rather than the counts
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=self.err,
            transient=False,
            disable=self.json_mode,
        )

    def confirm(self, question: str, *, default: bool = False) -> bool:
        return click.confirm(question, default=default, err=True)

    def choose(self, question: str, choices: Sequence[str], default: str) -> str:
        return click.prompt(question, type=click.Choice(list(choices)), default=default, err=True)
