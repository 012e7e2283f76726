"""bench.soak still runs: a 3-second soak against a fresh server process answers every call."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow  # about 15-25 s: a server process, a 200-step training run, 3 s of traffic
def test_a_short_soak_has_no_errors_and_reports_rss_and_percentiles(capsys):
    from bench import soak

    assert soak.main(["--seconds", "3", "--clients", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 0 and report["calls"] > 0
    assert set(report["operations"]) == {"predict", "generate", "predict_stream", "list", "get", "train"}
    assert report["operations"]["predict"]["p50_ms"] <= report["operations"]["predict"]["p99_ms"]
    assert report["rss_mib"]["start"] > 0 and report["rss_mib"]["end"] > 0
