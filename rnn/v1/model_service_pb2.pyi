from rnn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OnnxGraph(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ONNX_GRAPH_UNSPECIFIED: _ClassVar[OnnxGraph]
    ONNX_GRAPH_FULL: _ClassVar[OnnxGraph]
    ONNX_GRAPH_STEP: _ClassVar[OnnxGraph]
    ONNX_GRAPH_ENCODER: _ClassVar[OnnxGraph]
    ONNX_GRAPH_DECODER_STEP: _ClassVar[OnnxGraph]
ONNX_GRAPH_UNSPECIFIED: OnnxGraph
ONNX_GRAPH_FULL: OnnxGraph
ONNX_GRAPH_STEP: OnnxGraph
ONNX_GRAPH_ENCODER: OnnxGraph
ONNX_GRAPH_DECODER_STEP: OnnxGraph

class ListModelsRequest(_message.Message):
    __slots__ = ("task", "page_size", "page_token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: _common_pb2.Task
    page_size: int
    page_token: str
    def __init__(self, task: _Optional[_Union[_common_pb2.Task, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[_common_pb2.ModelInfo]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[_common_pb2.ModelInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelInfo
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class ExportOnnxRequest(_message.Message):
    __slots__ = ("model", "graph", "chunk_size")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    model: str
    graph: OnnxGraph
    chunk_size: int
    def __init__(self, model: _Optional[str] = ..., graph: _Optional[_Union[OnnxGraph, str]] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class ExportOnnxResponse(_message.Message):
    __slots__ = ("chunk", "offset", "total_bytes", "sha256")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    offset: int
    total_bytes: int
    sha256: str
    def __init__(self, chunk: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...
