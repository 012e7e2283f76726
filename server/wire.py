"""What arrives on the wire before a handler sees it: decoding that cannot fail, and a check of every field.

grpc.aio answers UNKNOWN ("Unexpected <class ...DecodeError>") when a request deserializer raises, so
`safe_deserializer` never raises: bytes that do not decode (corrupt wire format, invalid UTF-8 in a string,
nesting deeper than the decoder allows, truncation) become an `Undecodable` value, which the call
interceptor answers with INVALID_ARGUMENT. `check_request` then walks every set field of a decoded request
(any request type, generically by its descriptor) and refuses strings longer than their limit, so no id,
name, page token, label or stop sequence of unbounded length reaches a handler.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from .errors import ServiceError, invalid

MAX_NAME_CHARS = 256  # every id, name, token, label, enum-like string a client sends
MAX_STOP_CHARS = 1024  # one StreamGenerate stop sequence
MAX_STRUCT_DEPTH = 8  # Struct option maps (spec.extra, dataset.options) nest at most this deep
FREE_TEXT = frozenset({"prompt", "text"})  # data fields: bounded by the message size limit only
_LONG = {"stop_sequences": MAX_STOP_CHARS}


class Undecodable:
    """A request message whose bytes did not decode as the method's request type."""

    __slots__ = ("type_name", "size")

    def __init__(self, type_name: str, size: int) -> None:
        self.type_name, self.size = type_name, size

    def error(self) -> ServiceError:
        return invalid(
            "request",
            f"the {self.size} bytes received are not a valid {self.type_name} message "
            f"(corrupt or truncated protobuf wire format, or invalid UTF-8 in a string field)",
        )


def safe_deserializer(deserialize: Callable[[bytes], Any] | None, type_name: str) -> Callable[[bytes], Any]:
    """`deserialize`, but bytes it refuses become an Undecodable instead of an exception."""

    def decode(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - DecodeError, RecursionError, ValueError...: all mean "not decodable"
            return Undecodable(type_name, len(data))

    return decode


def type_name_of(deserialize: Callable | None) -> str:
    """'rnn.v1.PredictRequest' for a message class's FromString, else a generic name."""
    owner = getattr(deserialize, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", "request")


def check_request(message: Any) -> None:
    """Raise INVALID_ARGUMENT naming the first field over its length limit (any protobuf message)."""
    if hasattr(message, "ListFields"):
        _check_message(message, "")


def _check_message(message, prefix: str) -> None:
    if isinstance(message, struct_pb2.Struct):
        _check_struct(message, prefix.rstrip("."), 0)
        return
    for field, value in message.ListFields():
        path = prefix + field.name
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                continue  # (no request type has maps)
            items = value if repeated else (value,)
            for i, item in enumerate(items):
                _check_message(item, f"{path}[{i}]." if repeated else path + ".")
        elif field.type == FieldDescriptor.TYPE_STRING and field.name not in FREE_TEXT:
            limit = _LONG.get(field.name, MAX_NAME_CHARS)
            for i, text in enumerate(value if repeated else (value,)):
                if len(text) > limit:
                    where = f"{path}[{i}]" if repeated else path
                    raise invalid(where, f"expected at most {limit} characters, got {len(text)}")


def _check_struct(struct: struct_pb2.Struct, path: str, depth: int) -> None:
    if depth > MAX_STRUCT_DEPTH:
        raise invalid(path, f"expected options nested at most {MAX_STRUCT_DEPTH} deep")
    for key, value in struct.fields.items():
        if len(key) > MAX_NAME_CHARS:
            raise invalid(path, f"expected keys of at most {MAX_NAME_CHARS} characters, got {len(key)}")
        _check_value(value, f"{path}.{key}", depth)


def _check_value(value: struct_pb2.Value, path: str, depth: int) -> None:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        _check_struct(value.struct_value, path, depth + 1)
    elif kind == "list_value":
        if depth + 1 > MAX_STRUCT_DEPTH:
            raise invalid(path, f"expected options nested at most {MAX_STRUCT_DEPTH} deep")
        for i, item in enumerate(value.list_value.values):
            _check_value(item, f"{path}[{i}]", depth + 1)
    elif kind == "number_value" and not math.isfinite(value.number_value):
        raise invalid(path, f"expected a finite number, got {value.number_value}")
