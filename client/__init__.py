"""Client of rnn-service: the typed RnnClient, its exceptions and records, and the rnnctl command line."""

from .errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RnnError,
    Unauthenticated,
    Unavailable,
)
from .rnn_client import RnnClient
from .types import (
    GeneratedToken,
    GenerationFinish,
    Job,
    JobEvent,
    LabelScore,
    ModelInfo,
    Prediction,
    StreamResult,
)

__all__ = [
    "RnnClient", "RnnError", "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition",
    "ResourceExhausted", "Unauthenticated", "PermissionDenied", "Unavailable", "DeadlineExceeded",
    "Cancelled", "Internal", "FieldViolation", "JobEvent", "Job", "ModelInfo", "Prediction", "LabelScore",
    "StreamResult", "GeneratedToken", "GenerationFinish",
]
