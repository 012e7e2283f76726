"""Hypothesis strategies for any protobuf request message, built from its descriptor.

Every field gets values over its whole wire range (negative and huge integers, NaN/Inf/-0.0/subnormal
doubles, unknown enum numbers, unicode and NUL in strings, empty and long repeated fields, absent optional
fields, any oneof branch), mixed with values that pass validation (`HINTS`: existing model names, well-formed
ids, text the models know) so the fuzzer also reaches the code behind the first check.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

MODEL_NAMES = ("lm", "clf", "fc")
TEXT = "the cat sat on the mat. "
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def _edge_ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (0, 1, -1, 2, 3, 4, 255, 256, 4096, 65536, low, high, low + 1, high - 1)
             if low <= v <= high]
    small = st.integers(max(low, -8), min(high, 300))
    return st.one_of(st.sampled_from(edges), small, st.integers(low, high))


DOUBLES = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.0, math.nan, math.inf, -math.inf, 1e308, -1e308,
                                     5e-324, 1e-300, 2.0**53]),
                    st.floats(-10, 10))
STRINGS = st.one_of(st.text(max_size=40),
                    st.sampled_from(["", "\x00", "../x", "a/b", ".hidden", "é", "\U0001f600", " ", "\n",
                                     "\ud7ff", "x" * 65, TEXT]),
                    st.text(alphabet=TEXT, max_size=60))
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_DOUBLE: DOUBLES,
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_INT32: _edge_ints(*INT32),
    FieldDescriptor.TYPE_SINT32: _edge_ints(*INT32),
    FieldDescriptor.TYPE_SFIXED32: _edge_ints(*INT32),
    FieldDescriptor.TYPE_INT64: _edge_ints(*INT64),
    FieldDescriptor.TYPE_SINT64: _edge_ints(*INT64),
    FieldDescriptor.TYPE_SFIXED64: _edge_ints(*INT64),
    FieldDescriptor.TYPE_UINT32: _edge_ints(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: _edge_ints(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: _edge_ints(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: _edge_ints(0, 2**64 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_STRING: STRINGS,
    FieldDescriptor.TYPE_BYTES: st.one_of(st.binary(max_size=64), st.just(TEXT.encode() * 4),
                                          st.sampled_from([b"", b"\xff\xfe", b"\x00" * 10])),
}
# Field name -> values that pass the first validation, offered alongside the generic ones.
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(MODEL_NAMES),
    "job_id": st.just("job-000000000000"),
    "resume_job_id": st.just("job-000000000000"),
    "sequence_id": st.sampled_from(["a", "b"]),
    "dataset_id": st.just("ds-" + "0" * 24),
    "text": st.text(alphabet=TEXT, min_size=1, max_size=80),
    "prompt": st.text(alphabet=TEXT, max_size=30),
    "ids": st.lists(st.integers(0, 40), max_size=30),
    "data": st.lists(st.floats(-3, 3), max_size=30),
    "max_new_tokens": st.integers(0, 20),
    "hidden_size": st.integers(1, 8),
    "num_layers": st.integers(1, 2),
    "embedding_dim": st.integers(1, 8),
    "max_steps": st.integers(0, 3),
    "epochs": st.integers(0, 2),
    "batch_size": st.integers(0, 4),
    "seq_len": st.integers(0, 10),
    "feature_size": st.integers(-1, 2),
    "chunk_size": st.integers(-1, 5000),
    "page_size": st.integers(-1, 1001),
    "page_token": st.sampled_from(["", "0", "1", "99", "-1", "x"]),
}
def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4)


LEAVES = st.none() | st.booleans() | DOUBLES | STRINGS | _edge_ints(-(10**18), 10**18)
JSON = st.recursive(LEAVES, _containers, max_leaves=8)
KEYS = st.sampled_from(["window", "tokenizer", "column", "header", "fmt", "bptt", "lr", "steps", "cell",
                        "validation"])
STRUCTS = st.dictionaries(st.one_of(STRINGS, KEYS), JSON, max_size=4)


def _value(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        if field.message_type.full_name == "google.protobuf.Struct":
            base = STRUCTS
        else:
            base = dicts_for(field.message_type, depth + 1)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        base = st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), _edge_ints(*INT32))
    else:
        base = SCALARS[field.type]
    if field.name in HINTS:
        hint = HINTS[field.name]
        if field.is_repeated:
            return st.one_of(hint, st.lists(base, max_size=8))
        return st.one_of(hint, base)
    if field.is_repeated:
        return st.one_of(st.lists(base, max_size=4), st.lists(base, min_size=20, max_size=80))
    return base


def dicts_for(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field-name -> value dicts for message `desc` (nested messages as dicts, at most 4 levels deep)."""
    if depth > 4:
        return st.just({})
    in_oneof = {f.name for o in desc.oneofs for f in o.fields}
    plain = {f.name: _value(f, depth) for f in desc.fields if f.name not in in_oneof}
    parts = [st.fixed_dictionaries({}, optional=plain)]
    for oneof in desc.oneofs:
        if oneof.name.startswith("_"):  # proto3 `optional` is a synthetic one-field oneof
            parts.append(st.fixed_dictionaries({}, optional={f.name: _value(f, depth) for f in oneof.fields}))
            continue
        parts.append(st.one_of(st.just({}), *[st.fixed_dictionaries({f.name: _value(f, depth)})
                                              for f in oneof.fields]))
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


def build(cls: type, values: dict[str, Any]):
    """A message of class `cls` from a `dicts_for` dict."""
    msg = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(msg, name) if field.message_type is not None else None
        if field.message_type is not None and field.message_type.full_name == "google.protobuf.Struct":
            _fill_struct(target, value)
        elif field.message_type is not None and field.is_repeated:
            for v in value:
                target.add().CopyFrom(build(_class_of(field), v))
        elif field.message_type is not None:
            target.CopyFrom(build(_class_of(field), value))
        elif field.is_repeated:
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


def _class_of(field: FieldDescriptor) -> type:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(field.message_type)


def _fill_struct(target: struct_pb2.Struct, value: dict) -> None:
    try:
        target.update(value)
    except (ValueError, TypeError):  # e.g. an int beyond float range: leave the struct empty
        target.Clear()


def requests(cls: type) -> st.SearchStrategy:
    """Messages of request class `cls` over the whole value space (see module docstring)."""
    return dicts_for(cls.DESCRIPTOR).map(lambda values: build(cls, values))
