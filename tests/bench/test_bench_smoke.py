"""bench.engine runs on tiny shapes and prints the documented JSON structure (timings unchecked)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="the engine benchmark compares against PyTorch")
pytest.importorskip("onnxruntime", reason="the generation-step case also times onnxruntime")

from bench import engine  # noqa: E402
from bench.common import format_table  # noqa: E402

ROW_KEYS = {"case", "kind", "layers", "input", "hidden", "batch", "steps", "pass", "engine_ms", "torch_ms",
            "ratio", "target", "repeats", "meets_target"}


def test_tiny_run_reports_every_case_and_pass_with_positive_timings():
    report = engine.run(engine.QUICK_CASES, repeats=1, threads=1, target_seconds=0.001, settle_seconds=0.0)
    json.dumps(report)  # JSON-able as printed by --json
    assert report["machine"]["threads"] == 1 and report["machine"]["torch_threads"] == 1
    assert report["machine"]["numpy_blas"], "threadpoolctl should name NumPy's BLAS"
    rows = report["rows"]
    assert [(r["case"], r["pass"]) for r in rows] == [
        ("tiny", "forward"), ("tiny", "forward+backward"), ("tiny-step", "step"),
    ]
    for row in rows:
        assert ROW_KEYS <= row.keys()
        assert row["engine_ms"] > 0 and row["torch_ms"] > 0 and row["ratio"] > 0
    assert rows[-1]["ort_ms"] > 0 and rows[-1]["ratio_ort"] > 0
    for row in rows[:2]:  # sequence cases also time PyTorch with oneDNN off (its ATen kernels)
        assert row["aten_ms"] > 0 and row["ratio_aten"] > 0
    table = format_table(rows, engine.COLUMNS)
    assert "tiny-step" in table and "engine/torch" in table and "engine/aten" in table


def test_main_prints_json(capsys, monkeypatch):
    monkeypatch.setattr(engine, "CASES", engine.QUICK_CASES)
    monkeypatch.setattr(engine, "QUICK_CASES", engine.QUICK_CASES[:1])
    engine.main(["--quick", "--repeats", "1", "--threads", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert {r["case"] for r in report["rows"]} == {"tiny", "tiny-step"}


def test_before_after_bench_times_a_copied_base_engine(tmp_path, capsys):
    """bench.engine_ab on the tiny case, with this checkout's engine copied as the 'base' package."""
    import shutil
    import sys
    from pathlib import Path

    import rnn_engine
    from bench import engine_ab

    shutil.copytree(Path(rnn_engine.__file__).parent, tmp_path / "rnn_engine_base")
    try:
        engine_ab.main(["--base", str(tmp_path), "--quick", "--threads", "1", "--cpu-time", "--json"])
    finally:
        sys.path.remove(str(tmp_path))
        for name in [k for k in sys.modules if k.startswith("rnn_engine_base")]:
            del sys.modules[name]
    report = json.loads(capsys.readouterr().out)
    assert report["clock"] == "thread CPU"
    expected = [("tiny", "forward"), ("tiny", "forward+backward")]
    assert [(r["case"], r["pass"]) for r in report["rows"]] == expected
    for row in report["rows"]:
        assert row["base_ms"] > 0 and row["new_ms"] > 0 and row["torch_ms"] > 0 and row["new_base"] > 0
    assert sys.modules["rnn_engine"] is rnn_engine  # the base package did not replace this one
    with pytest.raises(SystemExit):
        engine_ab.main(["--base", str(tmp_path), "--threads", "2", "--cpu-time"])


def test_lstm_step_breakdown_times_every_contender_per_step():
    from bench import lstm_step

    report = lstm_step.run(lstm_step.QUICK_SHAPES, repeats=1, threads=1)
    json.dumps(report)
    assert [r["contender"] for r in report["rows"]] == [
        "numpy", "torch.mm", "torch LSTM", "torch LSTM, oneDNN off", "engine LSTM"]
    assert all(r["us_per_step"] > 0 and r["gflops"] > 0 for r in report["rows"])
