"""bench.service on a tiny model: one repeat against a real server subprocess; report structure only."""

from __future__ import annotations

import json

from bench import service


def test_tiny_run_reports_streams_overhead_and_predict_latencies(capsys):
    argv = ["--quick", "--hidden", "16", "--layers", "1", "--tokens", "12", "--predict-seconds", "0.3",
            "--json"]
    assert service.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens"] == 12 and report["repeats"] == 1 and report["machine"]["threads"] == 1
    for path in ("server", "engine", "step"):
        stream = report["streams"][path]
        assert stream["token_ms"] > 0 and stream["mean_token_ms"] > 0 and len(stream["samples_ms"]) == 1
    assert set(report["overhead"]) == {"value", "from_median_gaps", "target", "met"}
    assert [r["clients"] for r in report["predict"]] == [1, 8, 32]
    for row in report["predict"]:
        assert row["errors"] == [] and row["calls_per_s"] > 0
        assert row["latency_p99_ms"] >= row["latency_p50_ms"] > 0
    assert "overhead" in service.table(report)
