"""`rnnctl export`: write a model's ONNX file (atomically: no partial file on failure)."""

from __future__ import annotations

from pathlib import Path

import click

from ..context import json_option, pass_app
from ..rnn_client import GRAPHS
from ._common import record


@click.command("export")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="File to write (default: MODEL.onnx, or MODEL.GRAPH.onnx for other graphs).")
@click.option("--graph", type=click.Choice(GRAPHS), default="full", show_default=True,
              help="full: the whole sequence; step: one step with explicit state inputs and outputs.")
@json_option
@pass_app
def command(app, model: str, output: Path | None, graph: str) -> None:
    """Export MODEL to ONNX."""
    if output is None:
        output = Path(f"{model}.onnx" if graph == "full" else f"{model}.{graph}.onnx")
    result = app.client.export_onnx(model, output, graph=graph)
    if app.console.json_mode:
        app.console.json({"model": model, "graph": graph, **record(result)})
    else:
        app.console.success(f"wrote {result.path} ({result.size_bytes:,} bytes, "
                            f"sha256 {result.sha256[:16]}...)")
