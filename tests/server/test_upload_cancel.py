"""A cancelled upload stores nothing, even when gRPC reports the cancel as a normal stream end."""

from __future__ import annotations

import pytest

from rnn.v1 import training_service_pb2 as tpb
from rnn_engine.errors import Cancelled
from server.jobs.uploads import UploadStore


def _parts(*chunks: bytes):
    yield tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="d"))
    for chunk in chunks:
        yield tpb.UploadDatasetRequest(chunk=chunk)


def test_a_cancelled_upload_leaves_nothing_on_disk(tmp_path):
    store = UploadStore(tmp_path, max_bytes=1 << 20)
    with pytest.raises(Cancelled, match="nothing was stored"):
        store.receive(_parts(b"abc", b"def"), is_active=lambda: False)
    assert list(store.root.iterdir()) == []


def test_a_live_upload_is_committed_with_its_sidecar(tmp_path):
    store = UploadStore(tmp_path, max_bytes=1 << 20)
    dataset_id, size, _ = store.receive(_parts(b"abc", b"def"), is_active=lambda: True)
    assert size == 6
    assert sorted(p.name for p in store.root.iterdir()) == [dataset_id, f"{dataset_id}.json"]
    assert store.read(dataset_id)[0] == b"abcdef"
