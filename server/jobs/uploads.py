"""Uploaded datasets under model_dir/.uploads/: content-addressed files (ds-<sha256>) with a JSON sidecar.

An upload in progress is written to `.part-<random>` under an flock (rnn_engine.filelock); start-up removes
only part files nobody holds, so servers sharing the directory never delete each other's uploads in progress.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import grpc

from rnn.v1 import training_service_pb2 as tpb
from rnn_engine import filelock
from rnn_engine.errors import Cancelled

from ..errors import ServiceError, exhausted, invalid

DATASET_ID = re.compile(r"ds-[0-9a-f]{24}")


class UploadStore:
    """Uploads of at most `max_bytes` each and `max_disk_bytes` on disk together (0: no total limit)."""

    def __init__(self, model_dir: Path, max_bytes: int, max_disk_bytes: int = 0) -> None:
        self.root = Path(model_dir) / ".uploads"
        if self.root.is_symlink():
            raise ValueError(f"{self.root} is a symlink: the upload directory must be a real directory")
        self.root.mkdir(parents=True, exist_ok=True)
        for part in self.root.glob(".part-*"):  # left by a crash mid-upload, unless another server holds it
            lock = filelock.lock_fresh(part)
            if lock is not None:
                part.unlink(missing_ok=True)
                filelock.unlock(lock)
        self.max_bytes, self.max_disk_bytes = max_bytes, max_disk_bytes
        self._lock = threading.Lock()
        self._stored = sum(
            p.stat().st_size for p in self.root.iterdir() if p.is_file() and not p.is_symlink()
        )
        self._receiving = 0  # bytes of uploads in progress

    def _reserve(self, n: int) -> None:
        """Count `n` more bytes against the disk quota; RESOURCE_EXHAUSTED when it would be exceeded."""
        with self._lock:
            if self.max_disk_bytes and self._stored + self._receiving + n > self.max_disk_bytes:
                used = self._stored + self._receiving
                raise exhausted(
                    "max_upload_disk_bytes",
                    f"uploads already use {used} bytes of disk", self.max_disk_bytes
                )
            self._receiving += n

    def _settle(self, received: int, stored: int) -> None:
        with self._lock:
            self._receiving -= received
            self._stored += stored

    def receive(self, requests: Iterable[tpb.UploadDatasetRequest],
                is_active: Callable[[], bool] = lambda: True) -> tuple[str, int, str]:
        """Write an upload stream (info first, then chunks); returns (dataset_id, size, sha256 hex).

        gRPC's server can report a client's cancellation as an ordinary end of the request stream, so
        `is_active` (the call context's) is asked once more before anything is committed: a cancelled upload
        stores nothing. Clients should also announce `info.size_bytes`, which catches a truncated stream.
        """
        it = iter(requests)
        first = next(it, None)
        if first is None or first.WhichOneof("part") != "info":
            raise invalid("info", "expected the first message to carry info (name, format)")
        info = first.info
        if info.format not in tpb.DatasetFormat.values():
            raise invalid("info.format", f"expected a DatasetFormat, got {info.format}")
        if info.size_bytes < 0:
            raise invalid("info.size_bytes", f"expected a size >= 0, got {info.size_bytes}")
        if info.size_bytes > self.max_bytes:
            raise exhausted(
                "max_upload_bytes", f"info.size_bytes: {info.size_bytes} bytes is too large", self.max_bytes
            )
        tmp, f = _open_part(self.root)
        digest, size, reserved, stored = hashlib.sha256(), 0, 0, 0
        try:
            # f stays open (and locked) until it has been renamed into place
            for n, msg in enumerate(it, start=1):
                if msg.WhichOneof("part") != "chunk":
                    raise invalid(f"chunk[{n}]", "expected a chunk; info may only come first")
                if size + len(msg.chunk) > self.max_bytes:
                    raise exhausted("max_upload_bytes", "the upload is larger than allowed", self.max_bytes)
                self._reserve(len(msg.chunk))
                reserved += len(msg.chunk)
                size += len(msg.chunk)
                digest.update(msg.chunk)
                f.write(msg.chunk)
            if not is_active():
                raise Cancelled("upload cancelled by the client before it ended; nothing was stored")
            if size == 0:
                raise invalid("chunk", "expected at least one non-empty chunk")
            if info.size_bytes and size != info.size_bytes:
                raise invalid("info.size_bytes", f"announced {info.size_bytes} bytes, received {size}")
            sha = digest.hexdigest()
            dataset_id = "ds-" + sha[:24]
            meta = json.dumps(
                {
                    "name": info.name,
                    "format": tpb.DatasetFormat.Name(info.format),
                    "size_bytes": size,
                    "sha256": sha,
                }
            ).encode()
            self._reserve(len(meta))
            reserved += len(meta)
            target = self.root / dataset_id
            replaced = _size(target) + _size(self.root / f"{dataset_id}.json")  # same content uploaded again
            # the sidecar first: a crash in between leaves no data file without it
            _write_atomic(self.root / f"{dataset_id}.json", meta)
            f.flush()
            os.replace(tmp, target)
            stored = size + len(meta) - replaced
            return dataset_id, size, sha
        finally:
            tmp.unlink(missing_ok=True)
            f.close()
            self._settle(reserved, stored)

    def read(self, dataset_id: str, field: str = "dataset.dataset_id") -> tuple[bytes, int]:
        """(content, DatasetFormat) of an upload; INVALID_ARGUMENT for a malformed id, NOT_FOUND if absent."""
        if not DATASET_ID.fullmatch(dataset_id):
            raise invalid(field, f"expected an id returned by UploadDataset (ds-...), got {dataset_id!r}")
        path, sidecar = self.root / dataset_id, self.root / f"{dataset_id}.json"
        if not (path.is_file() and sidecar.is_file()) or path.is_symlink() or sidecar.is_symlink():
            raise ServiceError(
                grpc.StatusCode.NOT_FOUND,
                f"{field}: dataset {dataset_id!r} not found",
                resource=("dataset", dataset_id),
            )
        meta = json.loads(sidecar.read_text())
        return path.read_bytes(), tpb.DatasetFormat.Value(meta.get("format", "DATASET_FORMAT_UNSPECIFIED"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _open_part(root: Path) -> tuple[Path, BinaryIO]:
    """A new `.part-<random>` file open for writing, flocked until closed (others' start-up skips it)."""
    for _ in range(20):
        tmp = root / f".part-{secrets.token_hex(8)}"
        f = open(tmp, "xb")  # noqa: SIM115 - returned open; the caller closes it
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(f.fileno()), os.stat(tmp, follow_symlinks=False)):
                return tmp, f
        except (BlockingIOError, FileNotFoundError):
            pass  # another start-up's clean-up took it between create and lock: try a new name
        f.close()
    raise OSError(f"could not lock a fresh upload file in {str(root)!r}")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp, f = _open_part(path.parent)
    try:
        f.write(data)
        f.flush()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        f.close()
