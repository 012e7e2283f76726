import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_LANGUAGE_MODEL: _ClassVar[Task]
    TASK_CLASSIFICATION: _ClassVar[Task]
    TASK_TAGGING: _ClassVar[Task]
    TASK_FORECASTING: _ClassVar[Task]
    TASK_ONE_TO_MANY: _ClassVar[Task]
    TASK_SEQ2SEQ: _ClassVar[Task]

class CellType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CELL_TYPE_UNSPECIFIED: _ClassVar[CellType]
    CELL_TYPE_RNN: _ClassVar[CellType]
    CELL_TYPE_LSTM: _ClassVar[CellType]
    CELL_TYPE_GRU: _ClassVar[CellType]

class OutputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_KIND_UNSPECIFIED: _ClassVar[OutputKind]
    OUTPUT_KIND_TOP_K: _ClassVar[OutputKind]
    OUTPUT_KIND_DISTRIBUTION: _ClassVar[OutputKind]
    OUTPUT_KIND_VALUES: _ClassVar[OutputKind]
    OUTPUT_KIND_LOG_LIKELIHOOD: _ClassVar[OutputKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]
TASK_UNSPECIFIED: Task
TASK_LANGUAGE_MODEL: Task
TASK_CLASSIFICATION: Task
TASK_TAGGING: Task
TASK_FORECASTING: Task
TASK_ONE_TO_MANY: Task
TASK_SEQ2SEQ: Task
CELL_TYPE_UNSPECIFIED: CellType
CELL_TYPE_RNN: CellType
CELL_TYPE_LSTM: CellType
CELL_TYPE_GRU: CellType
OUTPUT_KIND_UNSPECIFIED: OutputKind
OUTPUT_KIND_TOP_K: OutputKind
OUTPUT_KIND_DISTRIBUTION: OutputKind
OUTPUT_KIND_VALUES: OutputKind
OUTPUT_KIND_LOG_LIKELIHOOD: OutputKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState

class ModelSpec(_message.Message):
    __slots__ = ("cell", "hidden_size", "num_layers", "bidirectional", "dropout", "embedding_dim", "tokenizer", "nonlinearity", "forget_bias", "extra")
    CELL_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    BIDIRECTIONAL_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    NONLINEARITY_FIELD_NUMBER: _ClassVar[int]
    FORGET_BIAS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    cell: CellType
    hidden_size: int
    num_layers: int
    bidirectional: bool
    dropout: float
    embedding_dim: int
    tokenizer: str
    nonlinearity: str
    forget_bias: float
    extra: _struct_pb2.Struct
    def __init__(self, cell: _Optional[_Union[CellType, str]] = ..., hidden_size: _Optional[int] = ..., num_layers: _Optional[int] = ..., bidirectional: _Optional[bool] = ..., dropout: _Optional[float] = ..., embedding_dim: _Optional[int] = ..., tokenizer: _Optional[str] = ..., nonlinearity: _Optional[str] = ..., forget_bias: _Optional[float] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TrainingSettings(_message.Message):
    __slots__ = ("epochs", "max_steps", "batch_size", "learning_rate", "optimizer", "weight_decay", "clip_grad_norm", "seq_len", "seed", "validation_fraction", "checkpoint_every", "time_budget_seconds", "extra")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    CLIP_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    max_steps: int
    batch_size: int
    learning_rate: float
    optimizer: str
    weight_decay: float
    clip_grad_norm: float
    seq_len: int
    seed: int
    validation_fraction: float
    checkpoint_every: int
    time_budget_seconds: float
    extra: _struct_pb2.Struct
    def __init__(self, epochs: _Optional[int] = ..., max_steps: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., optimizer: _Optional[str] = ..., weight_decay: _Optional[float] = ..., clip_grad_norm: _Optional[float] = ..., seq_len: _Optional[int] = ..., seed: _Optional[int] = ..., validation_fraction: _Optional[float] = ..., checkpoint_every: _Optional[int] = ..., time_budget_seconds: _Optional[float] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TokenIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class FloatSequence(_message.Message):
    __slots__ = ("data", "feature_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FEATURE_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedScalarFieldContainer[float]
    feature_size: int
    def __init__(self, data: _Optional[_Iterable[float]] = ..., feature_size: _Optional[int] = ...) -> None: ...

class SequenceInput(_message.Message):
    __slots__ = ("text", "token_ids", "values")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: TokenIds
    values: FloatSequence
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Union[TokenIds, _Mapping]] = ..., values: _Optional[_Union[FloatSequence, _Mapping]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "id", "probability")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    label: str
    id: int
    probability: float
    def __init__(self, label: _Optional[str] = ..., id: _Optional[int] = ..., probability: _Optional[float] = ...) -> None: ...

class StepOutput(_message.Message):
    __slots__ = ("top_k", "distribution", "values", "log_probability")
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    LOG_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    top_k: _containers.RepeatedCompositeFieldContainer[LabelScore]
    distribution: _containers.RepeatedScalarFieldContainer[float]
    values: _containers.RepeatedScalarFieldContainer[float]
    log_probability: float
    def __init__(self, top_k: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., distribution: _Optional[_Iterable[float]] = ..., values: _Optional[_Iterable[float]] = ..., log_probability: _Optional[float] = ...) -> None: ...

class SequenceOutput(_message.Message):
    __slots__ = ("steps", "length", "text", "token_ids", "tokens", "log_likelihood", "perplexity")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    LOG_LIKELIHOOD_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[StepOutput]
    length: int
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    tokens: _containers.RepeatedScalarFieldContainer[str]
    log_likelihood: float
    perplexity: float
    def __init__(self, steps: _Optional[_Iterable[_Union[StepOutput, _Mapping]]] = ..., length: _Optional[int] = ..., text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., tokens: _Optional[_Iterable[str]] = ..., log_likelihood: _Optional[float] = ..., perplexity: _Optional[float] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "task", "spec", "vocab_size", "labels", "parameter_count", "metrics", "created", "training", "input_size", "output_size", "job_id", "details")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: Task
    spec: ModelSpec
    vocab_size: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    parameter_count: int
    metrics: _containers.ScalarMap[str, float]
    created: _timestamp_pb2.Timestamp
    training: TrainingSettings
    input_size: int
    output_size: int
    job_id: str
    details: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., vocab_size: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., parameter_count: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., training: _Optional[_Union[TrainingSettings, _Mapping]] = ..., input_size: _Optional[int] = ..., output_size: _Optional[int] = ..., job_id: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
