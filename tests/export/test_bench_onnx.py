"""bench/onnx.py runs end to end on a tiny case and reports agreeing, positive timings (not their values)."""

from __future__ import annotations

import pytest

pytest.importorskip("threadpoolctl", reason="the benchmarks pin threads with threadpoolctl")
pytest.importorskip("onnxruntime", reason="the benchmark times onnxruntime")


def test_quick_run_reports_one_row_per_case():
    from bench.engine import QUICK_CASE
    from bench.onnx import run

    report = run([QUICK_CASE], repeats=1, threads=1, target_seconds=0.001)
    (row,) = report["rows"]
    assert row["case"] == "tiny" and row["engine_ms"] > 0 and row["ort_ms"] > 0 and row["ratio_ort"] > 0
    assert report["machine"]["threads"] == 1 and report["machine"]["onnxruntime"]
