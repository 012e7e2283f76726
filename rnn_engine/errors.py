"""The engine's one error hierarchy; the server maps each class to one gRPC status code."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidInput(EngineError, ValueError):
    """An argument has the wrong shape, type or value; the message names it and says what was expected.

    `field` is the argument's name as the caller spelt it ("hidden_size", "grads['w']"); the server turns it
    into the BadRequest field violation. The message still starts with "field: " for people reading it.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(EngineError, LookupError):
    """A named model, checkpoint or file does not exist; `resource_type`/`resource_name` say which."""

    def __init__(self, message: str, *, resource_type: str | None = None, resource_name: str | None = None):
        super().__init__(message)
        self.resource_type, self.resource_name = resource_type, resource_name


class AlreadyExists(EngineError):
    """A model or job with that name already exists."""


class FailedPrecondition(EngineError):
    """The call is valid but not for this object in its current state (e.g. generating from a classifier)."""


class NotTrained(FailedPrecondition):
    """The model has no trained weights yet."""


class IncompatibleModel(FailedPrecondition):
    """A file or checkpoint belongs to another model kind or a newer format."""


class Cancelled(EngineError):
    """Work was stopped because its caller asked it to stop."""
