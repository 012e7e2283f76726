"""Conversion between plain Python values and rnn.v1 protobuf messages (the client's only protobuf code)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from rnn.v1 import common_pb2, inference_service_pb2, training_service_pb2

from . import types
from .errors import InvalidArgument

CELLS = ("rnn", "rnn_tanh", "rnn_relu", "lstm", "gru")


def enum_name(enum: Any, value: int, prefix: str | None = None) -> str:
    """TASK_LANGUAGE_MODEL -> "language_model"; the UNSPECIFIED value -> "".

    `enum` is a generated enum wrapper or an EnumDescriptor; `prefix` defaults to the enum's UPPER_SNAKE
    name plus "_" (the buf STANDARD naming rule)."""
    desc = enum.DESCRIPTOR if isinstance(enum, EnumTypeWrapper) else enum
    if prefix is None:
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", desc.name).upper() + "_"
    by_number = desc.values_by_number
    name = by_number[value].name if value in by_number else f"{prefix}UNKNOWN_{value}"
    name = name.removeprefix(prefix).lower()
    return "" if name == "unspecified" else name


def enum_value(enum: EnumTypeWrapper, name: str, prefix: str, what: str) -> int:
    """"language_model" -> TASK_LANGUAGE_MODEL, with a clear error listing the accepted names."""
    choices = [n.removeprefix(prefix).lower() for n in enum.keys() if not n.endswith("UNSPECIFIED")]
    if not isinstance(name, str) or name.strip().lower().replace("-", "_") not in choices:
        raise InvalidArgument(f"{what}: expected one of {choices}, got {name!r}")
    return enum.Value(prefix + name.strip().upper().replace("-", "_"))


def task_value(task: str) -> int:
    return enum_value(common_pb2.Task, task, "TASK_", "task")


def task_name(value: int) -> str:
    return enum_name(common_pb2.Task, value, "TASK_")


def _time(ts: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """A timezone-aware UTC datetime, or None when the field is unset."""
    return ts.ToDatetime(tzinfo=UTC) if present and (ts.seconds or ts.nanos) else None


def plain_numbers(value: Any) -> Any:
    """Struct values with integral floats turned back into ints (JSON numbers travel as doubles)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    return value


def _struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"options: expected a mapping of setting names to values, got {value!r}")
    s = struct_pb2.Struct()
    s.update(dict(value))
    return s


def set_fields(msg: Any, values: Mapping[str, Any]) -> None:
    """Set the scalar fields of `msg` from `values`, skipping None; wrong types raise InvalidArgument."""
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) and msg.DESCRIPTOR.fields_by_name[key].type != 8:  # 8: TYPE_BOOL
            raise InvalidArgument(f"{key}: expected a number, got {value!r}")
        try:
            setattr(msg, key, value)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"{key}: expected a value of the field's type, got {value!r} ({e})") from e


def settings_dict(msg: Any) -> dict[str, Any]:
    """A ModelSpec / TrainingSettings as a plain dict of the fields that are set (enums as lower-case
    names without their prefix, e.g. cell "gru"; `extra` Struct entries merged in)."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.name == "extra":
            out.update(plain_numbers(json_format.MessageToDict(value)))
        elif fd.enum_type is not None:
            out[fd.name] = enum_name(fd.enum_type, value)
        else:
            out[fd.name] = value
    return out


def model_spec(cell: str | None, options: Mapping[str, Any], extra: Mapping[str, Any] | None) -> Any:
    """Build a ModelSpec; `options` holds the spec's optional fields (None values are left unset)."""
    spec = common_pb2.ModelSpec()
    if cell is not None:
        if cell not in CELLS:
            raise InvalidArgument(f"cell: expected one of {list(CELLS)}, got {cell!r}")
        spec.cell = common_pb2.CellType.Value("CELL_TYPE_" + cell.split("_")[0].upper())
        if cell == "rnn_relu":
            spec.nonlinearity = "relu"
    set_fields(spec, options)
    if (s := _struct(extra)) is not None:
        spec.extra.CopyFrom(s)
    return spec


def training_settings(options: Mapping[str, Any], extra: Mapping[str, Any] | None) -> Any:
    settings = common_pb2.TrainingSettings()
    set_fields(settings, options)
    if (s := _struct(extra)) is not None:
        settings.extra.CopyFrom(s)
    return settings


def dataset_format(name: str | None) -> int:
    if name is None:
        return training_service_pb2.DATASET_FORMAT_UNSPECIFIED
    return enum_value(training_service_pb2.DatasetFormat, name, "DATASET_FORMAT_", "data_format")


def job_event(ev: Any) -> types.JobEvent:
    return types.JobEvent(
        job_id=ev.job_id, sequence=ev.sequence,
        kind=enum_name(training_service_pb2.JobEventKind, ev.kind, "JOB_EVENT_KIND_"),
        state=enum_name(common_pb2.JobState, ev.state, "JOB_STATE_"),
        step=ev.step, total_steps=ev.total_steps, epoch=ev.epoch, loss=ev.loss,
        validation_loss=ev.validation_loss if ev.HasField("validation_loss") else None,
        metrics=dict(ev.metrics), time=_time(ev.time, ev.HasField("time")), message=ev.message,
        elapsed_seconds=ev.elapsed_seconds, items_per_second=ev.items_per_second, eta_seconds=ev.eta_seconds,
        best_step=ev.best_step,
    )


def job(j: Any) -> types.Job:
    return types.Job(
        job_id=j.job_id, model=j.model, task=task_name(j.task),
        state=enum_name(common_pb2.JobState, j.state, "JOB_STATE_"),
        created=_time(j.created, j.HasField("created")), started=_time(j.started, j.HasField("started")),
        finished=_time(j.finished, j.HasField("finished")), step=j.step, total_steps=j.total_steps,
        last_loss=j.last_loss, metrics=dict(j.metrics), message=j.message, spec=settings_dict(j.spec),
        training=settings_dict(j.training), resumable=j.resumable, event_count=j.event_count,
    )


def model_info(m: Any) -> types.ModelInfo:
    return types.ModelInfo(
        name=m.name, task=task_name(m.task), spec=settings_dict(m.spec), vocab_size=m.vocab_size,
        labels=list(m.labels), parameter_count=m.parameter_count, metrics=dict(m.metrics),
        created=_time(m.created, m.HasField("created")), training=settings_dict(m.training),
        input_size=m.input_size, output_size=m.output_size, job_id=m.job_id,
        details=plain_numbers(json_format.MessageToDict(m.details)) if m.HasField("details") else {},
    )


def sequence_input(seq: Any, where: str) -> Any:
    """str -> text; integer list/array -> token ids; float list/array (T,) or (T, F) -> values."""
    if isinstance(seq, str):
        return common_pb2.SequenceInput(text=seq)
    if isinstance(seq, bytes | bytearray | Mapping) or not isinstance(seq, Sequence | np.ndarray):
        raise InvalidArgument(f"{where}: expected a str, a list of token ids or a float array, "
                              f"got {type(seq).__name__}")
    arr = np.asarray(seq)
    if arr.size == 0:
        raise InvalidArgument(f"{where}: expected a non-empty sequence, got an empty one")
    if arr.dtype.kind in "iu" and arr.ndim == 1:
        return common_pb2.SequenceInput(token_ids=common_pb2.TokenIds(ids=arr.astype(np.int64).tolist()))
    if arr.dtype.kind in "fiub" and arr.ndim in (1, 2):
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise InvalidArgument(f"{where}: expected finite values, got NaN or infinity")
        feature_size = 1 if arr.ndim == 1 else arr.shape[1]
        return common_pb2.SequenceInput(values=common_pb2.FloatSequence(data=arr.ravel().tolist(),
                                                                        feature_size=feature_size))
    raise InvalidArgument(f"{where}: expected token ids (1-D ints) or values (T,) / (T, F) floats, "
                          f"got an array of dtype {arr.dtype} and shape {arr.shape}")


def output_kind(name: str | None) -> int:
    if name is None:
        return common_pb2.OUTPUT_KIND_UNSPECIFIED
    return enum_value(common_pb2.OutputKind, name, "OUTPUT_KIND_", "output")


def prediction(out: Any, task: str = "") -> types.Prediction:
    steps = list(out.steps)
    top_k = [[types.LabelScore(s.label, s.id, s.probability) for s in step.top_k] for step in steps]
    dist = np.array([list(s.distribution) for s in steps]) if any(s.distribution for s in steps) else None
    vals = np.array([list(s.values) for s in steps]) if any(s.values for s in steps) else None
    scored = out.HasField("log_likelihood")
    return types.Prediction(length=out.length, top_k=top_k, distribution=dist, values=vals,
                            text=out.text, token_ids=list(out.token_ids), tokens=list(out.tokens),
                            task=task, log_probs=[s.log_probability for s in steps] if scored else [],
                            log_likelihood=out.log_likelihood if scored else None,
                            perplexity=out.perplexity if scored else None)


def generate_request(model: str, prompt: Any, options: Mapping[str, Any], stop: Sequence[str],
                     label: str | None = None) -> Any:
    """A StreamGenerateRequest; a non-str prompt is a series of floats (T,) or (T, F) for forecasters."""
    req = inference_service_pb2.StreamGenerateRequest(model=model, stop_sequences=list(stop),
                                                      label=label or "")
    if isinstance(prompt, str):
        req.prompt = prompt
    else:
        if isinstance(prompt, list | tuple):
            prompt = np.asarray(prompt, dtype=np.float64)
        seq = sequence_input(prompt, "prompt")
        if seq.WhichOneof("content") != "values":
            raise InvalidArgument("prompt: expected text or a float series, got integer token ids")
        req.prompt_values.CopyFrom(seq.values)
    set_fields(req, options)
    return req


def generation_event(resp: Any) -> types.GeneratedToken | types.GenerationFinish:
    if resp.WhichOneof("event") == "token":
        t = resp.token
        return types.GeneratedToken(text=t.text, id=t.id, logprob=t.log_probability, index=t.index,
                                    value=t.value if t.HasField("value") else None)
    s = resp.summary
    return types.GenerationFinish(
        reason=enum_name(inference_service_pb2.FinishReason, s.finish_reason, "FINISH_REASON_"),
        prompt_tokens=s.prompt_tokens, generated_tokens=s.generated_tokens, text=s.text,
        stop_sequence=s.stop_sequence,
    )
