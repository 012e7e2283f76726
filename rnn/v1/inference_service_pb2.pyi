from rnn.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_STOP_SEQUENCE: _ClassVar[FinishReason]
    FINISH_REASON_END_OF_SEQUENCE: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_STOP_SEQUENCE: FinishReason
FINISH_REASON_END_OF_SEQUENCE: FinishReason
FINISH_REASON_CANCELLED: FinishReason

class PredictRequest(_message.Message):
    __slots__ = ("model", "inputs", "top_k", "output")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    model: str
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.SequenceInput]
    top_k: int
    output: _common_pb2.OutputKind
    def __init__(self, model: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.SequenceInput, _Mapping]]] = ..., top_k: _Optional[int] = ..., output: _Optional[_Union[_common_pb2.OutputKind, str]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("model", "task", "outputs")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    task: _common_pb2.Task
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.SequenceOutput]
    def __init__(self, model: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.Task, str]] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.SequenceOutput, _Mapping]]] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("model", "sequence_id", "start", "end", "reset", "chunk", "top_k", "output")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    model: str
    sequence_id: str
    start: bool
    end: bool
    reset: bool
    chunk: _common_pb2.SequenceInput
    top_k: int
    output: _common_pb2.OutputKind
    def __init__(self, model: _Optional[str] = ..., sequence_id: _Optional[str] = ..., start: _Optional[bool] = ..., end: _Optional[bool] = ..., reset: _Optional[bool] = ..., chunk: _Optional[_Union[_common_pb2.SequenceInput, _Mapping]] = ..., top_k: _Optional[int] = ..., output: _Optional[_Union[_common_pb2.OutputKind, str]] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("sequence_id", "output", "steps_seen", "ended")
    SEQUENCE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STEPS_SEEN_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    sequence_id: str
    output: _common_pb2.SequenceOutput
    steps_seen: int
    ended: bool
    def __init__(self, sequence_id: _Optional[str] = ..., output: _Optional[_Union[_common_pb2.SequenceOutput, _Mapping]] = ..., steps_seen: _Optional[int] = ..., ended: _Optional[bool] = ...) -> None: ...

class StreamGenerateRequest(_message.Message):
    __slots__ = ("model", "prompt", "max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "stop_sequences", "seed", "label", "beam_size", "prompt_values")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_VALUES_FIELD_NUMBER: _ClassVar[int]
    model: str
    prompt: str
    max_new_tokens: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    stop_sequences: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    label: str
    beam_size: int
    prompt_values: _common_pb2.FloatSequence
    def __init__(self, model: _Optional[str] = ..., prompt: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., repetition_penalty: _Optional[float] = ..., stop_sequences: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ..., label: _Optional[str] = ..., beam_size: _Optional[int] = ..., prompt_values: _Optional[_Union[_common_pb2.FloatSequence, _Mapping]] = ...) -> None: ...

class GeneratedToken(_message.Message):
    __slots__ = ("text", "id", "log_probability", "index", "value")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    LOG_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    text: str
    id: int
    log_probability: float
    index: int
    value: float
    def __init__(self, text: _Optional[str] = ..., id: _Optional[int] = ..., log_probability: _Optional[float] = ..., index: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class GenerationSummary(_message.Message):
    __slots__ = ("finish_reason", "prompt_tokens", "generated_tokens", "text", "stop_sequence")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    finish_reason: FinishReason
    prompt_tokens: int
    generated_tokens: int
    text: str
    stop_sequence: str
    def __init__(self, finish_reason: _Optional[_Union[FinishReason, str]] = ..., prompt_tokens: _Optional[int] = ..., generated_tokens: _Optional[int] = ..., text: _Optional[str] = ..., stop_sequence: _Optional[str] = ...) -> None: ...

class StreamGenerateResponse(_message.Message):
    __slots__ = ("token", "summary")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    token: GeneratedToken
    summary: GenerationSummary
    def __init__(self, token: _Optional[_Union[GeneratedToken, _Mapping]] = ..., summary: _Optional[_Union[GenerationSummary, _Mapping]] = ...) -> None: ...
