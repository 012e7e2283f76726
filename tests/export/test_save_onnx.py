"""save_onnx writes whole files or nothing, and names the path in every error."""

from __future__ import annotations

import os

import onnx
import pytest

from rnn_engine.errors import InvalidInput, NotFound
from rnn_engine.onnx_export import export_model, save_onnx
from tests.export.model_cases import make_model


@pytest.fixture(scope="module")
def proto() -> onnx.ModelProto:
    return export_model(make_model("language_model", "gru"), "step")


def test_saved_file_loads_back_identical(tmp_path, proto):
    path = save_onnx(proto, tmp_path / "lm.onnx")
    assert onnx.load(str(path)).SerializeToString() == proto.SerializeToString()
    assert os.listdir(tmp_path) == ["lm.onnx"]


def test_missing_directory_is_not_found_and_names_the_path(tmp_path, proto):
    target = tmp_path / "nowhere" / "lm.onnx"
    with pytest.raises(NotFound, match="nowhere"):
        save_onnx(proto, target)
    assert not target.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_is_invalid_input_and_leaves_nothing(tmp_path, proto):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InvalidInput, match=f"cannot write '{locked / 'lm.onnx'}'"):
            save_onnx(proto, locked / "lm.onnx")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_permission_error_is_invalid_input_naming_the_path(tmp_path, proto, monkeypatch):
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(InvalidInput, match=f"cannot write '{tmp_path / 'lm.onnx'}': Permission denied"):
        save_onnx(proto, tmp_path / "lm.onnx")
    assert os.listdir(tmp_path) == []


def test_parent_that_is_a_file_is_rejected(tmp_path, proto):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="is not a directory"):
        save_onnx(proto, tmp_path / "file" / "lm.onnx")


def test_directory_as_target_is_rejected(tmp_path, proto):
    with pytest.raises(InvalidInput, match="is a directory"):
        save_onnx(proto, tmp_path)


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, proto, monkeypatch):
    target = tmp_path / "lm.onnx"
    target.write_bytes(b"old model")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InvalidInput, match="No space left on device"):
        save_onnx(proto, target)
    assert target.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["lm.onnx"]


def test_rejects_what_is_not_a_model_or_a_path(tmp_path, proto):
    with pytest.raises(InvalidInput, match="model_proto: expected an onnx.ModelProto, got bytes"):
        save_onnx(b"...", tmp_path / "x.onnx")
    with pytest.raises(InvalidInput, match="path: expected a file path"):
        save_onnx(proto, 42)
