"""Uploaded datasets under model_dir/.uploads/: content-addressed files (ds-<sha256 prefix>) with a JSON sidecar."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

import grpc

from rnn.v1 import training_service_pb2 as tpb

from .errors import ServiceError, exhausted, invalid

DATASET_ID = re.compile(r"ds-[0-9a-f]{24}")


class UploadStore:
    def __init__(self, model_dir: Path, max_bytes: int) -> None:
        self.root = Path(model_dir) / ".uploads"
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes

    def receive(self, requests: Iterable[tpb.UploadDatasetRequest]) -> tuple[str, int, str]:
        """Write an upload stream (info first, then chunks); returns (dataset_id, size, sha256 hex)."""
        it = iter(requests)
        first = next(it, None)
        if first is None or first.WhichOneof("part") != "info":
            raise invalid("info", "expected the first message to carry info (name, format)")
        info = first.info
        if info.size_bytes < 0:
            raise invalid("info.size_bytes", f"expected a size >= 0, got {info.size_bytes}")
        if info.size_bytes > self.max_bytes:
            raise exhausted("max_upload_bytes", f"info.size_bytes: {info.size_bytes} bytes is too large")
        tmp = self.root / f".part-{secrets.token_hex(8)}"
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as f:
                for n, msg in enumerate(it, start=1):
                    if msg.WhichOneof("part") != "chunk":
                        raise invalid(f"chunk[{n}]", "expected a chunk; info may only come first")
                    size += len(msg.chunk)
                    if size > self.max_bytes:
                        raise exhausted("max_upload_bytes", f"the upload exceeds {self.max_bytes} bytes")
                    digest.update(msg.chunk)
                    f.write(msg.chunk)
            if size == 0:
                raise invalid("chunk", "expected at least one non-empty chunk")
            if info.size_bytes and size != info.size_bytes:
                raise invalid("info.size_bytes", f"announced {info.size_bytes} bytes, received {size}")
            sha = digest.hexdigest()
            dataset_id = "ds-" + sha[:24]
            os.replace(tmp, self.root / dataset_id)
            meta = {"name": info.name, "format": tpb.DatasetFormat.Name(info.format), "size_bytes": size,
                    "sha256": sha}
            (self.root / f"{dataset_id}.json").write_text(json.dumps(meta))
            return dataset_id, size, sha
        finally:
            tmp.unlink(missing_ok=True)

    def read(self, dataset_id: str, field: str = "dataset.dataset_id") -> tuple[bytes, int]:
        """(content, DatasetFormat) of an upload; INVALID_ARGUMENT for a malformed id, NOT_FOUND if absent."""
        if not DATASET_ID.fullmatch(dataset_id):
            raise invalid(field, f"expected an id returned by UploadDataset (ds-...), got {dataset_id!r}")
        path = self.root / dataset_id
        if not path.is_file():
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"{field}: dataset {dataset_id!r} not found")
        meta = json.loads((self.root / f"{dataset_id}.json").read_text())
        return path.read_bytes(), tpb.DatasetFormat.Value(meta.get("format", "DATASET_FORMAT_UNSPECIFIED"))
