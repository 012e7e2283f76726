"""Atomic writing of an ONNX model: a temporary sibling file, fsync, then rename; never a partial file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import onnx

from ..errors import InvalidInput, NotFound


def save_onnx(model_proto: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Write `model_proto` to `path` atomically and return the path.

    The bytes go to a hidden temporary file in the same directory, are fsynced, and the file is renamed
    over `path`; on any error the temporary file is removed, so `path` holds either its old content or
    the complete new model.

    Raises:
        InvalidInput: `model_proto` is not a ModelProto, `path` is not a path, is a directory, or cannot be
            written (permissions, read-only file system); the message names the path.
        NotFound: the directory that should hold `path` does not exist.
    """
    if not isinstance(model_proto, onnx.ModelProto):
        raise InvalidInput(
            f"model_proto: expected an onnx.ModelProto, got {type(model_proto).__name__}",
            field="model_proto",
        )
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise InvalidInput(f"path: expected a file path, got {path!r}", field="path")
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"path: {str(path)!r} is a directory, expected a file path", field="path")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise InvalidInput(
            f"path: {str(parent)!r} (the parent of {str(path)!r}) is not a directory",
            field="path",
        )
    if not parent.is_dir():
        raise NotFound(f"path: directory {str(parent)!r} of {str(path)!r} does not exist")
    data = model_proto.SerializeToString()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise InvalidInput(f"path: cannot write {str(path)!r}: {exc.strerror or exc}", field="path") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InvalidInput(f"path: cannot write {str(path)!r}: {exc.strerror or exc}",
            field="path") from exc
        raise
    return path
