"""Client file transfer: atomic writes (temp file renamed when complete) and verified chunk streams."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from .errors import RnnError, translate_stream


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask would race with threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file; on success it replaces `path` (mode as a new file would get, or the old file's),
    on any error it is deleted and `path` is left as it was."""
    target = Path(path)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def receive_chunks(responses: Any, f: BinaryIO) -> tuple[int, str]:
    """Write a stream of (chunk, offset, total_bytes, sha256) messages to `f`, checking that the offsets are
    contiguous and the size and SHA-256 match what the server announced; returns (size, sha256 hex)."""
    h, written, total, expected = hashlib.sha256(), 0, None, ""
    for resp in translate_stream(responses):
        if resp.offset != written:
            raise RnnError(f"export: expected a chunk at offset {written}, got offset {resp.offset}",
                           code=grpc.StatusCode.DATA_LOSS)
        f.write(resp.chunk)
        h.update(resp.chunk)
        written += len(resp.chunk)
        total, expected = resp.total_bytes, resp.sha256
    if total is None or written != total:
        raise RnnError(f"export: expected {total} bytes, got {written}", code=grpc.StatusCode.DATA_LOSS)
    if expected and h.hexdigest() != expected:
        raise RnnError("export: SHA-256 of the received file does not match the server's",
                       code=grpc.StatusCode.DATA_LOSS)
    return written, h.hexdigest()
