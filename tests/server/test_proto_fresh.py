"""The committed generated code in rnn/v1/ equals what scripts/gen_proto.py produces from proto/rnn/v1/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_gen_proto():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_generated_code_matches_the_proto_files(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools regenerates the code")
    written = _load_gen_proto().generate(tmp_path)
    assert written, "no files generated"
    for fresh in written:
        rel = fresh.relative_to(tmp_path)
        committed = ROOT / rel
        assert committed.exists(), f"{rel} is generated but not committed: run `make proto`"
        assert committed.read_text() == fresh.read_text(), f"{rel} is stale: run `make proto`"
    fresh_names = {p.relative_to(tmp_path) for p in written}
    extra = {p.relative_to(ROOT) for p in (ROOT / "rnn" / "v1").glob("*_pb2*.py*")} - fresh_names
    assert not extra, f"generated files without a .proto: {sorted(map(str, extra))}"


def test_generated_modules_import_as_rnn_v1():
    from rnn.v1 import (
        common_pb2,
        inference_service_pb2_grpc,
        model_service_pb2_grpc,
        training_service_pb2_grpc,
    )

    assert common_pb2.DESCRIPTOR.package == "rnn.v1"
    assert hasattr(training_service_pb2_grpc, "TrainingServiceStub")
    assert hasattr(inference_service_pb2_grpc, "InferenceServiceStub")
    assert hasattr(model_service_pb2_grpc, "ModelServiceStub")
