"""Conversion between rnn.v1 messages and the engine's plain Python values for models, specs, jobs and events.

Conversion lives in two modules: this one (ModelService and TrainingService: model specs and info, training
settings, job records and events) and server/predict_io.py (InferenceService: SequenceInput -> engine
inputs, predict results -> SequenceOutput). The servicers wrap what these return in their response messages.
Request fields are validated here against the server limits, and every error names the request field
(e.g. "spec.hidden_size").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import training_service_pb2 as tpb
from rnn_engine.errors import InvalidInput

from .errors import invalid, with_field_prefix

TASKS = {
    pb.TASK_LANGUAGE_MODEL: "language_model",
    pb.TASK_CLASSIFICATION: "classification",
    pb.TASK_TAGGING: "tagging",
    pb.TASK_FORECASTING: "forecasting",
    pb.TASK_ONE_TO_MANY: "one_to_many",
    pb.TASK_SEQ2SEQ: "seq2seq",
}
TASK_ENUMS = {v: k for k, v in TASKS.items()}
CELLS = {pb.CELL_TYPE_LSTM: "lstm", pb.CELL_TYPE_GRU: "gru", pb.CELL_TYPE_RNN: "rnn"}
JOB_STATES = {
    name: getattr(pb, "JOB_STATE_" + name)
    for name in ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "INTERRUPTED")
}
EVENT_KINDS = {
    "state": tpb.JOB_EVENT_KIND_STATE,
    "progress": tpb.JOB_EVENT_KIND_PROGRESS,
    "step": tpb.JOB_EVENT_KIND_PROGRESS,
    "epoch": tpb.JOB_EVENT_KIND_PROGRESS,
    "eval": tpb.JOB_EVENT_KIND_EVALUATION,
    "checkpoint": tpb.JOB_EVENT_KIND_CHECKPOINT,
    "log": tpb.JOB_EVENT_KIND_LOG,
    "done": tpb.JOB_EVENT_KIND_COMPLETED,
}
FINISH = {
    "length": ipb.FINISH_REASON_LENGTH,
    "stop": ipb.FINISH_REASON_STOP_SEQUENCE,
    "eos": ipb.FINISH_REASON_END_OF_SEQUENCE,
    "cancelled": ipb.FINISH_REASON_CANCELLED,
}
# ModelSpec / TrainingSettings field -> engine config field.
SPEC_FIELDS = {
    "hidden_size": "hidden_size",
    "num_layers": "num_layers",
    "bidirectional": "bidirectional",
    "dropout": "dropout",
    "embedding_dim": "embedding_dim",
    "forget_bias": "forget_bias",
}
TRAIN_FIELDS = {
    "epochs": "epochs",
    "max_steps": "steps",
    "batch_size": "batch_size",
    "learning_rate": "lr",
    "weight_decay": "weight_decay",
    "clip_grad_norm": "clip_norm",
    "seq_len": "bptt",
    "seed": "seed",
    "validation_fraction": "validation_fraction",
    "checkpoint_every": "checkpoint_every",
    "time_budget_seconds": "time_budget",
}


# ------------------------------------------------------------------------------------------ settings
def struct_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a dict, with integral floats turned back into ints (JSON numbers travel as doubles)."""

    def fix(v):
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v

    return fix(json_format.MessageToDict(value))


def task_from(task: int, field: str = "task") -> str:
    if task not in TASKS:
        shown = pb.Task.Name(task) if task in pb.Task.values() else task
        raise invalid(field, f"expected one of {[pb.Task.Name(t) for t in TASKS]}, got {shown}")
    return TASKS[task]


def model_config_from(task: str, spec: pb.ModelSpec) -> dict[str, Any]:
    """ModelConfig.to_dict()-shaped settings from a ModelSpec (validated by the engine's ModelConfig)."""
    from rnn_engine.config import ModelConfig

    cfg: dict[str, Any] = {"task": task}
    if spec.cell != pb.CELL_TYPE_UNSPECIFIED:
        if spec.cell not in CELLS:
            raise invalid("spec.cell", f"expected a CellType, got {spec.cell}")
        cfg["cell"] = CELLS[spec.cell]
    if spec.nonlinearity and spec.cell != pb.CELL_TYPE_RNN:
        raise invalid("spec.nonlinearity", "only CELL_TYPE_RNN takes a nonlinearity")
    if cfg.get("cell") == "rnn":
        if spec.nonlinearity not in ("", "tanh", "relu"):
            raise invalid("spec.nonlinearity", f"expected 'tanh' or 'relu', got {spec.nonlinearity!r}")
        cfg["cell"] = "rnn_" + (spec.nonlinearity or "tanh")
    for name, key in SPEC_FIELDS.items():
        if spec.HasField(name):
            cfg[key] = getattr(spec, name)
    if spec.tokenizer:
        cfg["tokenizer"] = spec.tokenizer
    extra = struct_dict(spec.extra)
    _merge_extra(cfg, extra, "spec", "ModelSpec", ModelConfig, reserved=("task",))
    try:
        return ModelConfig.from_dict(cfg).to_dict()
    except InvalidInput as exc:
        rename = {**{v: k for k, v in SPEC_FIELDS.items()}, **{k: f"extra.{k}" for k in extra}}
        if str(exc).startswith("task:"):
            raise with_field_prefix(exc, "") from None
        raise with_field_prefix(exc, "spec", rename) from None


def _merge_extra(cfg: dict, extra: dict, field: str, message: str, config_cls, reserved=()) -> None:
    """Add a message's `extra` settings to `cfg`: each must be a `config_cls` setting no field set already."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in extra:
        if key in cfg or key in reserved:
            raise invalid(f"{field}.extra.{key}", f"set by a {message} field already; give it once")
        if key not in known:
            raise invalid(f"{field}.extra.{key}",
                          f"expected a {config_cls.__name__} setting, one of {sorted(known)}")
    cfg.update(extra)


def train_config_from(training: pb.TrainingSettings) -> dict[str, Any]:
    """TrainConfig.to_dict()-shaped settings from TrainingSettings (validated by the engine's TrainConfig)."""
    from rnn_engine.config import TrainConfig

    cfg: dict[str, Any] = {}
    for name, key in TRAIN_FIELDS.items():
        if training.HasField(name):
            value = getattr(training, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise invalid(f"training.{name}", f"expected a finite number, got {value}")
            cfg[key] = value
    if "epochs" in cfg and "steps" not in cfg:
        cfg["steps"] = 0  # epochs alone decide the length
    if training.optimizer:
        cfg["optimizer"] = training.optimizer
    extra = struct_dict(training.extra)
    _merge_extra(cfg, extra, "training", "TrainingSettings", TrainConfig)
    try:
        return TrainConfig.from_dict(cfg).to_dict()
    except InvalidInput as exc:
        rename = {**{v: k for k, v in TRAIN_FIELDS.items()}, **{k: f"extra.{k}" for k in extra}}
        raise with_field_prefix(exc, "training", rename) from None


# ------------------------------------------------------------------------------------------ time, jobs
def timestamp(seconds: float | str | None) -> timestamp_pb2.Timestamp | None:
    if seconds in (None, ""):
        return None
    ts = timestamp_pb2.Timestamp()
    if isinstance(seconds, str):
        try:
            seconds = dt.datetime.fromisoformat(seconds).timestamp()
        except ValueError:
            return None
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _floats(d: Any) -> dict[str, float]:
    if not isinstance(d, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in d.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def settings_to_pb(model_config: dict, train_config: dict) -> tuple[pb.ModelSpec, pb.TrainingSettings]:
    """Engine config dicts back to ModelSpec / TrainingSettings (unknown keys go to `extra`)."""
    spec = pb.ModelSpec()
    cell = model_config.get("cell", "")
    spec.cell = {"lstm": pb.CELL_TYPE_LSTM, "gru": pb.CELL_TYPE_GRU}.get(
        cell, pb.CELL_TYPE_RNN if cell.startswith("rnn") else pb.CELL_TYPE_UNSPECIFIED
    )
    if cell.startswith("rnn_"):
        spec.nonlinearity = cell[4:]
    for name, key in SPEC_FIELDS.items():
        if model_config.get(key) is not None:
            setattr(spec, name, model_config[key])
    spec.tokenizer = model_config.get("tokenizer") or ""
    known = {"task", "cell", "tokenizer", *SPEC_FIELDS.values()}
    spec.extra.update({k: v for k, v in model_config.items() if k not in known and v is not None})
    training = pb.TrainingSettings()
    for name, key in TRAIN_FIELDS.items():
        value = train_config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            setattr(training, name, value)
    training.optimizer = train_config.get("optimizer") or ""
    known = {"optimizer", *TRAIN_FIELDS.values()}
    training.extra.update({k: v for k, v in train_config.items() if k not in known and v is not None})
    return spec, training


def job_to_pb(record, resumable: bool = False) -> tpb.Job:
    """A server.jobs.record.JobRecord as a Job message."""
    spec, training = settings_to_pb(record.model_config, record.train_config)
    job = tpb.Job(
        job_id=record.job_id,
        model=record.model,
        task=TASK_ENUMS.get(record.task, pb.TASK_UNSPECIFIED),
        state=JOB_STATES.get(record.state, pb.JOB_STATE_UNSPECIFIED),
        step=record.step,
        total_steps=record.total_steps,
        last_loss=record.last_loss,
        metrics=_floats(record.metrics),
        message=record.message,
        spec=spec,
        training=training,
        resumable=resumable,
        event_count=record.event_count,
    )
    for name in ("created", "started", "finished"):
        ts = timestamp(getattr(record, name))
        if ts is not None:
            getattr(job, name).CopyFrom(ts)
    return job


def event_to_pb(event: dict[str, Any]) -> tpb.JobEvent:
    """A job event dict (server/jobs/) as a JobEvent message."""

    def num(*keys, kind=float):
        for key in keys:
            v = event.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                return kind(v)
        return kind(0)

    out = tpb.JobEvent(
        job_id=event.get("job_id", ""),
        sequence=int(event.get("sequence", 0)),
        kind=EVENT_KINDS.get(str(event.get("kind", "")), tpb.JOB_EVENT_KIND_PROGRESS),
        state=JOB_STATES.get(event.get("state", ""), pb.JOB_STATE_UNSPECIFIED),
        step=num("step", kind=int),
        total_steps=num("total_steps", "steps", kind=int),
        epoch=num("epoch", kind=int),
        loss=num("loss", "train_loss"),
        metrics=_floats(event.get("metrics")),
        message=str(event.get("message") or ""),
        elapsed_seconds=num("elapsed"),
        items_per_second=num("items_per_sec"),
        eta_seconds=num("eta"),
        best_step=num("best_step", kind=int),
    )
    metrics = event.get("metrics") if isinstance(event.get("metrics"), dict) else {}
    for key in ("validation_loss", "val_loss", "loss"):
        v = event.get(key) if key != "loss" else metrics.get("loss", metrics.get("val_loss"))
        if isinstance(v, int | float) and math.isfinite(v):
            out.validation_loss = float(v)
            break
    ts = timestamp(event.get("time"))
    if ts is not None:
        out.time.CopyFrom(ts)
    return out


def model_info_to_pb(info: dict[str, Any]) -> pb.ModelInfo:
    """`Model.info()` (plus "name") as a ModelInfo message."""
    task = info.get("task", "")
    run = info.get("training") or {}  # the trainer's summary; the settings are its "train_config"
    spec, training = settings_to_pb({**info, "task": task}, run.get("train_config") or {})
    for key in (
        "labels",
        "metrics",
        "training",
        "created",
        "vocab_size",
        "num_parameters",
        "num_features",
        "name",
        "max_length",
        "window",
        "dtype",
        "history",
    ):
        if key in spec.extra.fields:
            del spec.extra[key]
    out = pb.ModelInfo(
        name=info.get("name", ""),
        task=TASK_ENUMS.get(task, pb.TASK_UNSPECIFIED),
        spec=spec,
        vocab_size=int(info.get("vocab_size") or 0),
        labels=[str(x) for x in info.get("labels") or []],
        parameter_count=int(info.get("num_parameters") or 0),
        metrics=_floats(info.get("metrics")),
        training=training,
        input_size=int(info.get("num_features") or info.get("vocab_size") or 0),
        output_size=int(
            len(info.get("labels") or []) or info.get("vocab_size") or info.get("num_features") or 0
        ),
        job_id=str((info.get("training") or {}).get("job_id", "")),
    )
    ts = timestamp(info.get("created"))
    if ts is not None:
        out.created.CopyFrom(ts)
    out.details.update(_jsonable(info))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
