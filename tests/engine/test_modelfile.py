"""Model directory format: round trip, atomic replacement under crashes, version and shape checks, names."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rnn_engine import modelfile
from rnn_engine.errors import IncompatibleModel, InvalidInput, NotFound
from rnn_engine.modelfile import (
    FORMAT_VERSION,
    cleanup_partial,
    list_model_dirs,
    load_model_dir,
    save_model_dir,
    validate_model_name,
)


def arrays_v(value: float) -> dict[str, np.ndarray]:
    return {
        "embedding.weight": np.full((5, 3), value, dtype=np.float32),
        "rnn.weight_ih_l0": np.arange(12, dtype=np.float64).reshape(4, 3) * value,
        "steps": np.array(7, dtype=np.int64),
    }


def test_round_trip_keeps_arrays_manifest_and_history(tmp_path):
    arrays = arrays_v(1.5)
    path = save_model_dir(tmp_path / "m1", arrays, {"task": "language_model"}, [{"epoch": 1, "loss": 2.5}])
    assert path == tmp_path / "m1"
    assert sorted(os.listdir(path)) == ["history.json", "manifest.json", "weights.npz"]
    loaded, manifest, history = load_model_dir(path)
    assert manifest == {"task": "language_model", "format_version": FORMAT_VERSION}
    assert history == [{"epoch": 1, "loss": 2.5}]
    assert loaded.keys() == arrays.keys()
    for key, value in arrays.items():
        assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value)
    # the weights file is a plain .npz that numpy reads without pickle
    with np.load(path / "weights.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)


def test_replacing_a_model_leaves_only_the_new_one_and_no_hidden_dirs(tmp_path):
    save_model_dir(tmp_path / "m", arrays_v(1.0), {"v": 1})
    save_model_dir(tmp_path / "m", arrays_v(2.0), {"v": 2})
    arrays, manifest, _ = load_model_dir(tmp_path / "m")
    assert manifest["v"] == 2 and arrays["embedding.weight"][0, 0] == 2.0
    assert os.listdir(tmp_path) == ["m"]


def test_replacement_swaps_atomically_so_the_name_always_holds_a_complete_model(tmp_path, monkeypatch):
    if modelfile._RENAMEAT2 is None:
        pytest.skip("renameat2 unavailable: the rename fallback is tested below")
    save_model_dir(tmp_path / "m", arrays_v(1.0), {"v": 1})
    real_rmtree, seen = modelfile.shutil.rmtree, []

    def rmtree_checking(path, **kwargs):
        removed = json.loads((path / "manifest.json").read_text())["v"]
        seen.append((load_model_dir(tmp_path / "m")[1]["v"], removed))
        real_rmtree(path, **kwargs)

    monkeypatch.setattr(modelfile.os, "rename", None)  # the replacement must not need two renames
    monkeypatch.setattr(modelfile.shutil, "rmtree", rmtree_checking)
    save_model_dir(tmp_path / "m", arrays_v(2.0), {"v": 2})
    assert seen == [(2, 1)]  # when the old copy is removed, the name already holds the new model
    assert os.listdir(tmp_path) == ["m"]


def test_a_failed_exchange_leaves_the_old_model_and_no_temp_dirs(tmp_path, monkeypatch):
    save_model_dir(tmp_path / "m", arrays_v(1.0), {"v": 1})

    def failing_exchange(a, b):
        raise OSError("simulated crash")

    monkeypatch.setattr(modelfile, "_exchange", failing_exchange)
    with pytest.raises(OSError, match="simulated crash"):
        save_model_dir(tmp_path / "m", arrays_v(2.0), {"v": 2})
    assert load_model_dir(tmp_path / "m")[1]["v"] == 1
    assert os.listdir(tmp_path) == ["m"]


@pytest.mark.parametrize("fail_at_call", [1, 2])
def test_a_crash_during_replacement_leaves_the_old_model_intact(tmp_path, monkeypatch, fail_at_call):
    save_model_dir(tmp_path / "m", arrays_v(1.0), {"v": 1})
    monkeypatch.setattr(modelfile, "_exchange", lambda a, b: False)  # the two-rename fallback
    real_rename, calls = os.rename, []

    def crashing_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == fail_at_call:
            raise OSError("simulated crash")
        return real_rename(src, dst)

    monkeypatch.setattr(modelfile.os, "rename", crashing_rename)
    with pytest.raises(OSError, match="simulated crash"):
        save_model_dir(tmp_path / "m", arrays_v(2.0), {"v": 2})
    monkeypatch.undo()
    arrays, manifest, _ = load_model_dir(tmp_path / "m")
    assert manifest["v"] == 1 and arrays["embedding.weight"][0, 0] == 1.0
    assert list_model_dirs(tmp_path) == ["m"]


def test_a_hard_crash_between_the_two_renames_is_repaired_by_cleanup_partial(tmp_path, monkeypatch):
    save_model_dir(tmp_path / "m", arrays_v(1.0), {"v": 1})
    monkeypatch.setattr(modelfile, "_exchange", lambda a, b: False)  # the two-rename fallback
    real_rename, calls = os.rename, []

    def die_after_first_rename(src, dst):
        calls.append(1)
        if len(calls) >= 2:
            raise KeyboardInterrupt  # stands for the process dying: no later rename happens
        return real_rename(src, dst)

    monkeypatch.setattr(modelfile.os, "rename", die_after_first_rename)
    monkeypatch.setattr(modelfile.shutil, "rmtree", lambda *a, **k: None)  # a dead process removes nothing
    with pytest.raises(KeyboardInterrupt):
        save_model_dir(tmp_path / "m", arrays_v(2.0), {"v": 2})
    monkeypatch.undo()
    assert not (tmp_path / "m").exists()  # the window: only hidden dirs remain
    assert list_model_dirs(tmp_path) == []
    touched = cleanup_partial(tmp_path)
    assert len(touched) == 2  # the .old dir restored, the .tmp dir removed
    assert load_model_dir(tmp_path / "m")[1]["v"] == 1
    assert os.listdir(tmp_path) == ["m"]


def test_leftover_temp_dirs_are_ignored_by_listing_and_removed_by_cleanup(tmp_path):
    save_model_dir(tmp_path / "good", arrays_v(1.0), {})
    (tmp_path / ".good.tmp-abc123").mkdir()
    (tmp_path / ".good.tmp-abc123" / "weights.npz").write_bytes(b"half")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "manifest.json").write_text("{}")
    assert list_model_dirs(tmp_path) == ["good"]
    assert cleanup_partial(tmp_path) == [".good.tmp-abc123"]
    assert sorted(os.listdir(tmp_path)) == ["good", "half"]
    assert list_model_dirs(tmp_path / "missing") == []


def test_a_newer_format_is_refused_with_an_upgrade_hint(tmp_path):
    path = save_model_dir(tmp_path / "m", arrays_v(1.0), {})
    (path / "manifest.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(IncompatibleModel, match=r"newer version \(format 2 > 1\): upgrade rnn-service"):
        load_model_dir(path)


@pytest.mark.parametrize(
    "file, content, error, match",
    [
        ("manifest.json", None, NotFound, "manifest.json is missing"),
        ("weights.npz", None, NotFound, "weights.npz is missing"),
        ("manifest.json", "{not json", IncompatibleModel, "not valid JSON"),
        ("manifest.json", "[1]", IncompatibleModel, "JSON object"),
        ("manifest.json", '{"format_version": "1"}', IncompatibleModel, "format_version"),
        ("weights.npz", "garbage", IncompatibleModel, "corrupt"),
        ("history.json", "{}", IncompatibleModel, "history.json"),
    ],
)
def test_missing_or_corrupt_files_are_refused(tmp_path, file, content, error, match):
    path = save_model_dir(tmp_path / "m", arrays_v(1.0), {})
    if content is None:
        (path / file).unlink()
    else:
        (path / file).write_text(content)
    with pytest.raises(error, match=match):
        load_model_dir(path)


def test_a_missing_directory_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no model directory"):
        load_model_dir(tmp_path / "nope")


def test_expected_shapes_and_dtypes_are_checked(tmp_path):
    path = save_model_dir(tmp_path / "m", arrays_v(1.0), {})
    good = {"embedding.weight": ((5, 3), np.float32), "rnn.weight_ih_l0": ((None, 3), "float64"),
            "steps": ((), None)}
    assert load_model_dir(path, expected=good)[0]["steps"] == 7
    cases = [
        ({**good, "embedding.weight": ((5, 4), np.float32)}, r"'embedding.weight': expected shape \(5, 4\)"),
        ({**good, "embedding.weight": ((5, 3, 1), np.float32)}, "expected shape"),
        ({**good, "embedding.weight": ((5, 3), np.float64)}, "expected dtype float64, got float32"),
        ({**good, "head.bias": ((2,), np.float32)}, r"missing \['head.bias'\]"),
        ({k: v for k, v in good.items() if k != "steps"}, r"unexpected \['steps'\]"),
    ]
    for expected, match in cases:
        with pytest.raises(IncompatibleModel, match=match):
            load_model_dir(path, expected=expected)


@pytest.mark.parametrize(
    "name, ok",
    [
        ("model", True), ("a", True), ("My_model-2.1", True), ("x" * 64, True), ("0", True),
        ("", False), ("x" * 65, False), (".hidden", False), ("..", False), ("a/b", False), ("../up", False),
        ("a\\b", False), ("sp ace", False), ("caf\u00e9", False), ("a\x00b", False),
        (None, False), (5, False),
    ],
)
def test_model_name_validation_table(name, ok):
    if ok:
        assert validate_model_name(name) == name
    else:
        with pytest.raises(InvalidInput, match="model name"):
            validate_model_name(name)


def test_paths_with_bad_names_are_refused_before_touching_disk(tmp_path):
    with pytest.raises(InvalidInput, match="model name"):
        save_model_dir(tmp_path / "sub" / "..", arrays_v(1.0), {})
    with pytest.raises(InvalidInput, match="model name"):
        load_model_dir(tmp_path / ".hidden")
    assert os.listdir(tmp_path) == []


def test_symlinked_model_directories_and_files_are_refused(tmp_path):
    real = save_model_dir(tmp_path / "real", arrays_v(1.0), {})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with pytest.raises(InvalidInput, match="symlink"):
        load_model_dir(tmp_path / "link")
    with pytest.raises(InvalidInput, match="symlink"):
        save_model_dir(tmp_path / "link", arrays_v(2.0), {})
    assert list_model_dirs(tmp_path) == ["real"]
    other = save_model_dir(tmp_path / "other", arrays_v(1.0), {})
    (other / "weights.npz").unlink()
    (other / "weights.npz").symlink_to(real / "weights.npz")
    with pytest.raises(IncompatibleModel, match="symlinks are refused"):
        load_model_dir(other)


@pytest.mark.parametrize(
    "arrays, manifest, history, match",
    [
        ([1, 2], {}, None, "arrays: expected a dict"),
        ({"a/b": np.zeros(2)}, {}, None, "names"),
        ({"a": [1.0]}, {}, None, "numpy ndarray"),
        ({"a": np.array([object()])}, {}, None, "numeric dtype"),
        ({"a": np.zeros(2)}, [], None, "manifest: expected a dict"),
        ({"a": np.zeros(2)}, {"x": object()}, None, "JSON-serialisable"),
        ({"a": np.zeros(2)}, {}, {"epoch": 1}, "history"),
    ],
)
def test_save_validates_its_arguments_and_writes_nothing(tmp_path, arrays, manifest, history, match):
    with pytest.raises(InvalidInput, match=match):
        save_model_dir(tmp_path / "m", arrays, manifest, history)
    assert not (tmp_path / "m").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
