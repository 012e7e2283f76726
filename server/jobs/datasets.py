"""Training data of a Train request: the bytes (inline or uploaded), their file suffix, the load options,
and a pre-check that reads and prepares them exactly as the worker will (so bad data fails the call).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rnn.v1 import training_service_pb2 as tpb
from rnn_engine.errors import InvalidInput

from .. import limits
from ..convert import struct_dict
from ..errors import invalid, with_field_prefix
from .uploads import UploadStore

SUFFIXES = {
    tpb.DATASET_FORMAT_TEXT: ".txt",
    tpb.DATASET_FORMAT_TSV: ".tsv",
    tpb.DATASET_FORMAT_CSV: ".csv",
    tpb.DATASET_FORMAT_JSONL: ".jsonl",
}
TASK_SUFFIX = {"language_model": ".txt", "forecasting": ".csv", "tagging": ".jsonl"}  # others: .tsv
OPTIONS = ("column", "exog_columns", "fmt", "header")  # load_dataset options that name no server path
CHECK_BYTES = 4 << 20  # datasets up to this size are read and prepared before the job is queued


def dataset_bytes(source: tpb.DatasetSource, task: str, uploads: UploadStore, config) -> tuple[bytes, str]:
    """(content, file suffix) of a DatasetSource; errors name `dataset.*` fields."""
    kind = source.WhichOneof("source")
    fmt = source.format
    if fmt not in tpb.DatasetFormat.values():
        raise invalid("dataset.format", f"expected a DatasetFormat, got {fmt}")
    if kind is None:
        raise invalid("dataset", "expected one of text, content or dataset_id")
    if kind == "dataset_id":
        data, upload_fmt = uploads.read(source.dataset_id)
        fmt = fmt or upload_fmt
    else:
        data = source.text.encode("utf-8") if kind == "text" else source.content
        limits.check_dataset_size(f"dataset.{kind}", len(data), config)
    if not data.strip():
        raise invalid(f"dataset.{kind}", "expected a non-empty dataset")
    return data, SUFFIXES.get(fmt) or TASK_SUFFIX.get(task, ".tsv")


def dataset_options(options) -> dict:
    """DatasetSource.options as load_dataset keywords (only the documented, path-free ones)."""
    values = struct_dict(options)
    for key, value in values.items():
        if key not in OPTIONS:
            raise invalid(f"dataset.options.{key}", f"expected one of {list(OPTIONS)}")
        if not OPTION_TYPES[key](value):
            raise invalid(f"dataset.options.{key}", f"expected {OPTION_SHAPES[key]}, got {value!r:.80}")
    return values


def _names(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


OPTION_TYPES = {"column": lambda v: isinstance(v, str), "exog_columns": _names,
                "fmt": lambda v: isinstance(v, str), "header": lambda v: isinstance(v, bool)}
OPTION_SHAPES = {"column": "a column name (string)",
                 "exog_columns": "a column name or a list of column names",
                 "fmt": "a format name (string)", "header": "true or false"}


def check_dataset(staging: Path, configs: tuple[dict, dict], data: bytes, suffix: str, options: dict) -> None:
    """Read and prepare the data as the worker will; INVALID_ARGUMENT on `dataset` (or its option) if bad."""
    from rnn_engine.config import ModelConfig, TrainConfig
    from rnn_engine.tasks import load_dataset, prepare

    if len(data) > CHECK_BYTES:
        return  # large data is checked by the worker (the job fails with the message)
    model_config, train_config = ModelConfig.from_dict(configs[0]), TrainConfig.from_dict(configs[1])
    with tempfile.TemporaryDirectory(dir=staging, prefix=".check-") as tmp:
        path = f"{tmp}/dataset{suffix}"
        Path(path).write_bytes(data)
        try:
            prepare(model_config, train_config, load_dataset(model_config.task, path, **options))
        except InvalidInput as exc:
            message = str(exc).replace(path, "dataset")  # never show server paths
            if exc.field in OPTIONS:
                raise with_field_prefix(InvalidInput(message, field=exc.field), "dataset.options") from None
            raise invalid("dataset", message.removeprefix("dataset: ")) from None
        except UnicodeDecodeError as exc:
            raise invalid("dataset", f"expected UTF-8 text: {exc.reason} at byte {exc.start}") from None
