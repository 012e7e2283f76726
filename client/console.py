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
        """A table; with all-empty column names, a plain two-column key/value table without a header."""
        table = Table(title=title, show_edge=False, header_style="bold", show_header=any(columns))
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
    BAR_WIDTH = 24

    def progress_fixed_width(self, progress: Progress):
        """f(description, total_steps) -> columns the progress line uses besides its stats field; the bar
        narrows (down to 8) on a narrow terminal first."""
        width = progress.console.width
        bar = progress.columns[1]
        bar.bar_width = max(8, min(self.BAR_WIDTH, width // 6))

        def fixed(description: str, total: int) -> int:
            counter = 2 * len(str(total or 0)) + 1  # "400/400"
            times = 7 + 3 + 7  # "0:01:23", "eta", "0:04:56"
            return len(description) + bar.bar_width + counter + times + 6  # one space between columns

        return fixed

    def progress(self) -> Progress:
        """A training progress bar on stderr: step counter, bar, loss/metric/throughput, elapsed, ETA."""
        return Progress(  # stats last and sized to fit (describe(width=...)), so nothing is cut
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=self.BAR_WIDTH),
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
