"""Datasets per model kind, and turning one into a fresh `Model` plus its training objective.

A `Dataset` holds plain Python values; `train` (and the optional `validation`) per task:

| task | examples |
| --- | --- |
| language_model | one text (str) |
| classification | list of (text, label) |
| tagging | list of (tokens: list[str], tags: list[str]) |
| forecasting | values (N,) float array, with `exog` (N, E) or None |
| one_to_many | list of (text, label): the label conditions the text (e.g. a name and its language) |
| seq2seq | list of (source text, target text) |

`load_dataset(task, source, **options)` reads a file (or takes the in-memory values above). Options:
`validation` (a second source), `column` / `exog_columns` (forecasting CSV), `fmt` / `header` (labelled
files). Without a validation part, `prepare` holds out `TrainConfig.validation_fraction`: the tail of a text
or series, a seeded random subset of examples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..backend import xp
from ..config import TASKS, ModelConfig, TrainConfig
from ..data import readers as data
from ..data.tokenizers import ByteTokenizer, CharTokenizer, Tokenizer, WordTokenizer
from ..errors import InvalidInput
from ..model import Model
from ..models.objectives import (
    DecoderObjective,
    ForecastObjective,
    LanguageModelObjective,
    Objective,
    SequenceLabelObjective,
)
from ..models.predict import tagging_ids

TOKENIZERS = {"char": CharTokenizer, "word": WordTokenizer, "byte": ByteTokenizer}


@dataclass
class Dataset:
    task: str
    train: Any
    validation: Any = None
    exog: Any = None  # forecasting: (N, E) exogenous series aligned with `train`, or None
    names: list[str] | None = None  # forecasting: [target column, *exogenous columns]


def _is_path(source: Any) -> bool:
    return isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and len(source) < 4096 and os.path.isfile(source)
    )


def _read(task: str, source: Any, options: dict) -> tuple[Any, Any, Any]:
    if task == "language_model":
        return data.read_text(source), None, None
    if task == "forecasting":
        if _is_path(source):
            values, exog, names = data.read_series(
                source, options.get("column"), options.get("exog_columns", ())
            )
            return values, exog, names
        values = xp.asarray(source, dtype=xp.float64)
        if values.ndim != 1 or not xp.isfinite(values).all():
            raise InvalidInput(
                f"source: expected a file or a 1-D series of finite numbers, got shape {values.shape}",
                field="source"
            )
        return values, None, None
    if _is_path(source):
        if task == "tagging":
            return data.read_tagged(source), None, None
        return data.read_labelled(source, options.get("fmt", "auto"), options.get("header")), None, None
    if not isinstance(source, list | tuple) or not source:
        raise InvalidInput(
            f"source: expected a file path or a non-empty list of examples for {task}",
            field="source",
        )
    return list(source), None, None


def load_dataset(task: str, source: Any, **options: Any) -> Dataset:
    """Read training data for `task` from a file or in-memory values (see the module docstring)."""
    if task not in TASKS:
        raise InvalidInput(f"task: expected one of {list(TASKS)}, got {task!r}", field="task")
    unknown = sorted(set(options) - {"validation", "column", "exog_columns", "fmt", "header"})
    if unknown:
        raise InvalidInput(f"options: unknown options {unknown}", field="options")
    train, exog, names = _read(task, source, options)
    valid = None
    if options.get("validation") is not None:
        valid, _, _ = _read(task, options["validation"], options)
    return Dataset(task, train, valid, exog, names)


# ------------------------------------------------------------------------------------------------- prepare
def _check_pairs(name: str, items: Any, first: type, second: type) -> list:
    if not isinstance(items, list | tuple) or not items:
        raise InvalidInput(
            f"{name}: expected a non-empty list of pairs, got {type(items).__name__}",
            field=name,
        )
    for i, pair in enumerate(items):
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        if not ok or not isinstance(pair[0], first) or not isinstance(pair[1], second):
            raise InvalidInput(
                f"{name}[{i}]: expected a ({first.__name__}, {second.__name__}) pair, got {pair!r:.80}",
                field=f"{name}[{i}]"
            )
        if not pair[0] or not pair[1]:
            raise InvalidInput(
                f"{name}[{i}]: expected non-empty values, got {pair!r:.80}",
                field=f"{name}[{i}]",
            )
    return list(items)


def _split(dataset: Dataset, tcfg: TrainConfig) -> tuple[Any, Any]:
    train, valid = dataset.train, dataset.validation
    if dataset.task == "language_model":
        if not isinstance(train, str) or not train.strip():
            raise InvalidInput("corpus: expected a non-empty training text, got an empty one", field="corpus")
        return (train, valid) if valid is not None else data.split_text(train, tcfg.validation_fraction)
    if dataset.task == "forecasting":
        return train, valid
    if valid is not None:
        return train, valid
    if len(train) < 2:
        raise InvalidInput(
            f"dataset: expected at least 2 examples to hold some out, got {len(train)}",
            field="dataset",
        )
    return data.split(list(train), tcfg.validation_fraction, tcfg.seed)


def _fit_tokenizer(cfg: ModelConfig, texts: list[str]) -> Tokenizer:
    return TOKENIZERS[cfg.tokenizer].fit(texts)


def _encode(model: Model, name: str, text: str) -> list[int]:
    return model.encode_text(name, text)


def prepare(cfg: ModelConfig, tcfg: TrainConfig, dataset: Dataset) -> tuple[Model, Objective]:
    """A fresh model fitted to the dataset (tokenizer, labels, normalisation) and its training objective."""
    for name, value, kind in (
        ("model_config", cfg, ModelConfig),
        ("train_config", tcfg, TrainConfig),
        ("dataset", dataset, Dataset),
    ):
        if not isinstance(value, kind):
            raise InvalidInput(f"{name}: expected a {kind.__name__}, got {type(value).__name__}", field=name)
    cfg.validate()
    tcfg.validate()
    if dataset.task != cfg.task:
        raise InvalidInput(
            f"dataset: expected data for task {cfg.task!r}, got {dataset.task!r}",
            field="dataset",
        )
    train, valid = _split(dataset, tcfg)
    if cfg.task == "forecasting":
        return _prepare_forecast(cfg, tcfg, dataset)
    if cfg.task == "language_model":
        model = Model(cfg, tokenizer=_fit_tokenizer(cfg, [train]))
        tok = model.tokenizer
        return model, LanguageModelObjective(model, tcfg, tok.encode(train), tok.encode(valid or ""))
    if cfg.task == "tagging":
        train = _check_pairs("train", train, list, list)
        valid = _check_pairs("validation", valid, list, list) if valid else []
        for i, (toks, tags) in enumerate(train + valid):
            if len(toks) != len(tags):
                raise InvalidInput(
                    f"examples[{i}]: expected one tag per token, got {len(toks)} tokens, {len(tags)} tags",
                    field=f"examples[{i}]"
                )
        tok = _fit_tokenizer(cfg, [" ".join(t) for t, _ in train])
        labels = sorted({t for _, tags in train + valid for t in tags})
        model = Model(cfg, tokenizer=tok, labels=labels)
        enc = [
            [(tagging_ids(model, "train", t)[0], [model.label_index[g] for g in tags]) for t, tags in part]
            for part in (train, valid)
        ]
        return model, SequenceLabelObjective(model, tcfg, enc[0], enc[1])
    if cfg.task == "seq2seq":
        train = _check_pairs("train", train, str, str)
        valid = _check_pairs("validation", valid, str, str) if valid else []
        model = Model(cfg, tokenizer=_fit_tokenizer(cfg, [s for p in train for s in p]))
        enc = [
            [(_encode(model, "source", s), _encode(model, "target", t)) for s, t in part]
            for part in (train, valid)
        ]
        return model, DecoderObjective(model, tcfg, enc[0], enc[1])
    train = _check_pairs("train", train, str, str)  # classification, one_to_many: (text, label)
    valid = _check_pairs("validation", valid, str, str) if valid else []
    labels = sorted({lab for _, lab in train + valid})
    model = Model(cfg, tokenizer=_fit_tokenizer(cfg, [t for t, _ in train]), labels=labels)
    enc = [
        [(_encode(model, "text", t), model.label_index[lab]) for t, lab in part] for part in (train, valid)
    ]
    if cfg.task == "one_to_many":
        enc = [[(lab, ids) for ids, lab in part] for part in enc]
        return model, DecoderObjective(model, tcfg, enc[0], enc[1])
    return model, SequenceLabelObjective(model, tcfg, enc[0], enc[1])


def _prepare_forecast(cfg: ModelConfig, tcfg: TrainConfig, dataset: Dataset) -> tuple[Model, Objective]:
    values = xp.asarray(dataset.train, dtype=xp.float64)
    table = values[:, None] if dataset.exog is None else xp.column_stack([values, dataset.exog])
    if dataset.validation is not None:
        raise InvalidInput(
            "validation: forecasting holds out the tail of the series; pass one series",
            field="validation",
        )
    K, N = cfg.window, len(table)
    n_valid = max(1, int(round(N * tcfg.validation_fraction)))
    n_train = N - n_valid
    if n_train <= K + 1:
        raise InvalidInput(
            f"series: {N} values leave {n_train} for training, not more than one window of "
            f"{K} + 1; give a longer series or a smaller window", field="series"
        )
    mean, std = table[:n_train].mean(axis=0), table[:n_train].std(axis=0)
    std = xp.where(std > 0, std, 1.0)
    norm = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    model = Model(cfg, norm=norm, num_features=table.shape[1])
    return model, ForecastObjective(
        model, tcfg, (table - mean) / std, list(range(K, n_train)), list(range(n_train, N))
    )
