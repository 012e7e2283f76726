"""Readers for training data (text, labelled sequences, tagged tokens, CSV series) and train/val splits.

Readers return plain Python / NumPy values; turning them into batches is the job of `training/tasks.py`.
Every error is an InvalidInput (or NotFound for a missing file) naming the file, the line or row, the field
and what was expected, e.g. "names.tsv:12: expected 'sequence<TAB>label', got a line without a tab".
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..backend import as_generator
from ..errors import InvalidInput, NotFound

T = TypeVar("T")
SEQUENCE_HEADERS = {"sequence", "text", "name", "word", "input", "x", "sentence", "string", "sequences"}
LABEL_HEADERS = {"label", "labels", "class", "category", "tag", "target", "y", "language", "output"}
DATE_HEADERS = {"date", "time", "timestamp", "month", "year", "day", "datetime", "period", "ds"}


# ---------------------------------------------------------------------------------------------- files
def _read_file(path: str | os.PathLike) -> str:
    """Whole file as text: UTF-8 (BOM stripped), '\\r\\n' -> '\\n'."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"{path}: no such file")
    if not path.is_file():
        raise InvalidInput(f"{path}: expected a regular file, got a directory or special file", field="path")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path}: expected UTF-8 text, got invalid byte at offset {exc.start}",
            field="path",
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


def read_text(path_or_text: str | os.PathLike) -> str:
    """A text corpus from a file or given literally.

    A `pathlib.Path` (any os.PathLike) is always read as a file; a str naming an existing file (one line) is
    read as that file; any other str is the corpus itself. Raises InvalidInput "corpus is empty" when the
    text has no non-whitespace character.
    """
    if isinstance(path_or_text, os.PathLike):
        text, where = _read_file(path_or_text), str(path_or_text)
    elif isinstance(path_or_text, str):
        is_file = "\n" not in path_or_text and len(path_or_text) < 4096 and os.path.isfile(path_or_text)
        text = _read_file(path_or_text) if is_file else path_or_text
        where = path_or_text if is_file else "text"
    else:
        raise InvalidInput(
            f"path_or_text: expected a str or a path, got {type(path_or_text).__name__}",
            field="path_or_text",
        )
    if not text.strip():
        raise InvalidInput(
            f"{where}: corpus is empty (expected some non-whitespace text)",
            field="path_or_text",
        )
    return text


def _lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line."""
    return [(i, line) for i, line in enumerate(_read_file(path).split("\n"), 1) if line.strip()]


def _is_header(first: str, second: str) -> bool:
    return first.strip().lower() in SEQUENCE_HEADERS or second.strip().lower() in LABEL_HEADERS


def _read_tsv(path: str | os.PathLike, header: bool | None) -> list[tuple[str, str]]:
    rows = []
    for n, (lineno, line) in enumerate(_lines(path)):
        if "\t" not in line:
            raise InvalidInput(
                f"{path}:{lineno}: expected 'sequence<TAB>label', got a line without a tab",
                field="path",
            )
        sequence, label = line.rsplit("\t", 1)
        if n == 0 and (header if header is not None else _is_header(sequence, label)):
            continue
        if not sequence.strip() or not label.strip():
            field = "sequence" if not sequence.strip() else "label"
            raise InvalidInput(f"{path}:{lineno}: {field}: expected a non-empty value", field="path")
        rows.append((sequence, label.strip()))
    return rows


def _json_objects(path: str | os.PathLike) -> list[tuple[int, dict]]:
    out = []
    for lineno, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path}:{lineno}: expected one JSON object per line, got invalid JSON "
                               f"({exc.msg})", field="path") from None
        if not isinstance(obj, dict):
            raise InvalidInput(
                f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}",
                field="path",
            )
        out.append((lineno, obj))
    return out


def _read_jsonl(path: str | os.PathLike) -> list[tuple[str, str]]:
    rows = []
    for lineno, obj in _json_objects(path):
        key = "sequence" if "sequence" in obj else "text"
        sequence, label = obj.get(key), obj.get("label")
        if not isinstance(sequence, str) or not sequence:
            raise InvalidInput(f"{path}:{lineno}: sequence: expected a non-empty string under 'sequence' "
                               f"or 'text', got {sequence!r}", field="path")
        if isinstance(label, int) and not isinstance(label, bool):
            label = str(label)
        if not isinstance(label, str) or not label.strip():
            raise InvalidInput(
                f"{path}:{lineno}: label: expected a non-empty string, got {label!r}",
                field="path",
            )
        rows.append((sequence, label.strip()))
    return rows


def read_labelled(
    path: str | os.PathLike, fmt: str = "auto", header: bool | None = None
) -> list[tuple[str, str]]:
    """(sequence, label) pairs for classification.

    Args:
        fmt: "tsv" (`sequence<TAB>label` per line, split at the last tab), "jsonl" (objects with "sequence" or
            "text" and "label"; integer labels become strings) or "auto" (by extension, else by content).
        header: TSV only: True/False, or None to detect a header row (first column named like "sequence",
            "text", "name", or second like "label", "class", "language").
    """
    if fmt not in ("auto", "tsv", "jsonl"):
        raise InvalidInput(f"fmt: expected 'auto', 'tsv' or 'jsonl', got {fmt!r}", field="fmt")
    if fmt == "auto":
        suffix = Path(path).suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            fmt = "jsonl"
        elif suffix in (".tsv", ".tab"):
            fmt = "tsv"
        else:
            lines = _lines(path)
            fmt = "jsonl" if lines and lines[0][1].lstrip().startswith("{") else "tsv"
    rows = _read_jsonl(path) if fmt == "jsonl" else _read_tsv(path, header)
    if not rows:
        raise InvalidInput(f"{path}: expected at least one labelled example, got none", field="path")
    return rows


def read_tagged(path: str | os.PathLike) -> list[tuple[list[str], list[str]]]:
    """(tokens, tags) pairs from JSONL lines like {"tokens": ["The", "cat"], "tags": ["DET", "NOUN"]}."""
    rows = []
    for lineno, obj in _json_objects(path):
        tokens, tags = obj.get("tokens"), obj.get("tags")
        for field, value in (("tokens", tokens), ("tags", tags)):
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise InvalidInput(f"{path}:{lineno}: {field}: expected a non-empty list of non-empty "
                                   f"strings, got {value!r:.80}", field="path")
        if len(tokens) != len(tags):
            raise InvalidInput(f"{path}:{lineno}: tags: expected one tag per token ({len(tokens)}), "
                               f"got {len(tags)}", field="path")
        rows.append((tokens, tags))
    if not rows:
        raise InvalidInput(f"{path}: expected at least one tagged example, got none", field="path")
    return rows


# ---------------------------------------------------------------------------------------------- series
def _to_float(path, lineno: int, column: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not value.strip() or not math.isfinite(number):
        shown = "a missing value" if not value.strip() else repr(value)
        raise InvalidInput(
            f"{path}: row {lineno}, column {column!r}: expected a finite number, got {shown}",
            field="path",
        )
    return number


def read_series(
    path: str | os.PathLike, column: str | None = None, exog_columns: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """A numeric time series from a CSV file with a header row.

    The first column is treated as a date/index (and ignored) when its header is date-like ("date", "month",
    ...) or its first value is not a number. `column` defaults to the first numeric column not in
    `exog_columns`. Rows are numbered as lines of the file (header = row 1).

    Returns: values (N,) float64, exog (N, E) float64 or None, names [column, *exog_columns].
    """
    if isinstance(exog_columns, str):
        exog_columns = (exog_columns,)
    exog_columns = list(exog_columns)
    text = _read_file(path)
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise InvalidInput(
            f"{path}: expected a header row and at least one data row, got {len(rows)} row(s)",
            field="path",
        )
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or not all(header):
        raise InvalidInput(
            f"{path}: row 1: expected unique, non-empty column names, got {header}",
            field="path",
        )
    first_is_index = header[0].lower() in DATE_HEADERS or not _is_number(rows[1][0])
    numeric = header[1:] if first_is_index else header
    candidates = [h for h in numeric if h not in exog_columns]
    if column is None:
        if not candidates:
            raise InvalidInput(
                f"{path}: expected a numeric column besides {exog_columns}, got columns {header}",
                field="path"
            )
        column = candidates[0]
    for name in [column, *exog_columns]:
        if name not in numeric:
            raise InvalidInput(
                f"{path}: column {name!r}: expected one of the numeric columns {numeric}",
                field="path",
            )
    if column in exog_columns:
        raise InvalidInput(
            f"exog_columns: expected columns other than the target {column!r}",
            field="exog_columns",
        )
    wanted = [header.index(name) for name in [column, *exog_columns]]
    table = np.empty((len(rows) - 1, len(wanted)))
    for r, row in enumerate(rows[1:]):
        lineno = r + 2
        if len(row) != len(header):
            raise InvalidInput(
                f"{path}: row {lineno}: expected {len(header)} fields, got {len(row)}",
                field="path",
            )
        for c, idx in enumerate(wanted):
            table[r, c] = _to_float(path, lineno, header[idx], row[idx])
    exog = table[:, 1:].copy() if exog_columns else None
    return table[:, 0].copy(), exog, [column, *exog_columns]


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- splits
def _n_val(n: int, val_fraction: Any) -> int:
    is_number = isinstance(val_fraction, int | float) and not isinstance(val_fraction, bool)
    if not is_number or not 0 <= val_fraction < 1:
        raise InvalidInput(
            f"val_fraction: expected a number in [0, 1), got {val_fraction!r}",
            field="val_fraction",
        )
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1  # a requested validation set is never silently empty
    if n - n_val < 1:
        raise InvalidInput(
            f"val_fraction: {val_fraction} of {n} item(s) leaves no training data",
            field="val_fraction",
        )
    return n_val


def split(
    items: Sequence[T], val_fraction: float = 0.1, seed: int | np.random.Generator | None = 0
) -> tuple[list[T], list[T]]:
    """Random (train, val) split of `items`; each part keeps the original order. Deterministic for a seed.

    At least one item goes to validation when val_fraction > 0 and there are >= 2 items.
    """
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise InvalidInput(
            f"items: expected a sequence (list or tuple), got {type(items).__name__}",
            field="items",
        )
    n = len(items)
    n_val = _n_val(n, val_fraction)
    rng = as_generator(seed)
    is_val = np.zeros(n, dtype=bool)
    is_val[rng.permutation(n)[:n_val]] = True
    train = [x for x, v in zip(items, is_val, strict=True) if not v]
    return train, [x for x, v in zip(items, is_val, strict=True) if v]


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val) where val is the contiguous last `val_fraction` of the characters of `text`."""
    if not isinstance(text, str):
        raise InvalidInput(f"text: expected a str, got {type(text).__name__}", field="text")
    n_val = _n_val(len(text), val_fraction)
    cut = len(text) - n_val
    return text[:cut], text[cut:]
