"""export_onnx writes the file whole or not at all: no partial or temporary file is left on error."""

from __future__ import annotations

import grpc
import pytest

from client import RnnClient, errors

from .fake_server import start_fake_server


@pytest.fixture()
def fake():
    server, port, servicer = start_fake_server()
    with RnnClient(f"127.0.0.1:{port}") as client:
        yield client, servicer
    server.stop(None)


def test_export_writes_all_chunks_and_checks_sha256(fake, tmp_path):
    client, servicer = fake
    result = client.export_onnx("m", tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_bytes() == b"".join(servicer.export_chunks)
    assert result.size_bytes == 100
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_error_mid_stream_leaves_no_file(fake, tmp_path):
    client, servicer = fake
    servicer.export_error = grpc.StatusCode.INTERNAL
    with pytest.raises(errors.Internal, match="export failed on purpose"):
        client.export_onnx("m", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_error_keeps_an_existing_file_untouched(fake, tmp_path):
    client, servicer = fake
    (tmp_path / "m.onnx").write_bytes(b"previous")
    servicer.export_error = grpc.StatusCode.UNAVAILABLE
    with pytest.raises(errors.Unavailable):
        client.export_onnx("m", tmp_path / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert (tmp_path / "m.onnx").read_bytes() == b"previous"


def test_checksum_mismatch_is_an_error_and_leaves_no_file(fake, tmp_path):
    client, servicer = fake
    servicer.export_sha = "0" * 64
    with pytest.raises(errors.RnnError, match="SHA-256"):
        client.export_onnx("m", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_graph_and_missing_directory_are_rejected(fake, tmp_path):
    client, _ = fake
    with pytest.raises(errors.InvalidArgument, match="graph: expected one of"):
        client.export_onnx("m", tmp_path / "m.onnx", graph="half")
    with pytest.raises(errors.InvalidArgument, match="existing directory"):
        client.export_onnx("m", tmp_path / "nowhere" / "m.onnx")


def test_exported_file_gets_normal_permissions_not_the_temp_files(fake, tmp_path):
    import os

    client, _ = fake
    client.export_onnx("m", tmp_path / "m.onnx")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.onnx").stat().st_mode & 0o777 == 0o666 & ~mask
