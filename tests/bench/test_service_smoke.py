"""bench.service on a tiny model: one repeat against a real server subprocess; report structure only."""

from __future__ import annotations

import json

from bench import service


def test_tiny_run_reports_streams_overhead_and_predict_latencies_in_both_modes(capsys):
    argv = ["--quick", "--hidden", "16", "--layers", "1", "--tokens", "12", "--predict-seconds", "0.3",
            "--json"]
    assert service.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens"] == 12 and report["repeats"] == 1 and report["machine"]["threads"] == 1
    assert list(report["modes"]) == ["off", "on"]  # --deterministic off and on, in one run
    for mode in report["modes"].values():
        for path in ("server", "engine", "step"):
            stream = mode["streams"][path]
            assert stream["token_ms"] > 0 and stream["mean_token_ms"] > 0 and len(stream["samples_ms"]) == 1
        assert set(mode["overhead"]) == {"value", "from_median_gaps", "target", "met"}
        assert set(mode["ratios"]) == {"stream_token_p50_over_step", "ttft_200_over_forward",
                                       "predict_1_p50_over_forward"}
        assert all(v > 0 for v in mode["ratios"].values()) and mode["ttft_200_ms"] > 0
        for row in mode["predict"]:
            assert row["errors"] == [] and row["calls_per_s"] > 0
            assert row["latency_p99_ms"] >= row["latency_p50_ms"] > 0
    assert [r["clients"] for r in report["modes"]["off"]["predict"]] == [1, 8, 32]
    assert [r["clients"] for r in report["modes"]["on"]["predict"]] == [1]
    text = service.table(report)
    assert "overhead" in text and "--deterministic on" in text
