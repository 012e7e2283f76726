"""bench.load in miniature: its model, its load generator against a running server (--address), its ratios."""

from __future__ import annotations

import json
import math

import pytest

from bench import load


def test_make_model_dir_writes_the_benchmark_model_once(tmp_path, capsys):
    assert load.main(["--make-model-dir", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models" / "lm").exists()
    assert "python -m server --model-dir" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:  # never overwrites a model
        load.main(["--make-model-dir", str(tmp_path / "models")])
    assert err.value.code == 2


@pytest.mark.parametrize("argv", [["--address", ""], ["--address", "a:1,b:2,c:3"], ["--address", "a:1,"],
                                  ["--address", "a:1", "--soak", "5"]])
def test_bad_address_arguments_are_refused(argv):
    with pytest.raises(SystemExit) as err:
        load.main(argv)
    assert err.value.code == 2


def test_an_address_with_no_server_is_a_clear_error(capsys):
    from bench.load import free_port

    with pytest.raises(SystemExit) as err:
        load.main(["--address", f"127.0.0.1:{free_port()}", "--quick"])
    assert err.value.code == 1 and "is a server listening at" in capsys.readouterr().err


def test_address_runs_the_phases_against_a_running_server(tmp_path, monkeypatch, capsys):
    from server import ServerConfig, create_server

    load.make_model_dir(tmp_path)
    server, port = create_server(ServerConfig(port=0, model_dir=tmp_path, metrics_port=0))
    server.start()
    monkeypatch.setattr(load, "CONCURRENCY", (1, 2))  # the real levels go to 64 streams: too long for a test
    try:
        argv = ["--address", f"127.0.0.1:{port}", "--seconds", "0.6", "--repeats", "1", "--json"]
        assert load.main(argv) == 0
    finally:
        server.drain(2)
    results = json.loads(capsys.readouterr().out)
    assert results["addresses"] == {"batching_on": f"127.0.0.1:{port}"} and "batching_off" not in results
    generate, predict = results["batching_on"]["generate"], results["batching_on"]["predict"]
    assert [r["clients"] for r in generate] == [1, 2] and [r["clients"] for r in predict] == [1, 2]
    for r in generate:
        assert r["errors"] == [] and r["tokens_per_s"] > 0
        assert 0 < r["token_p50_ms"] <= r["token_p99_ms"] and r["ttft_p50_ms"] > 0
    for r in predict:
        assert r["errors"] == [] and r["calls_per_s"] > 0 and r["latency_p50_ms"] > 0
    assert results["ratios"] == {}  # neither 64 streams nor an unbatched server were measured
    load.print_table(results)
    assert "batching_on: StreamGenerate" in capsys.readouterr().out


def test_ratios_compare_64_streams_with_one_and_skip_what_was_not_measured():
    def gen(n, tps, p50, p99):
        return {"clients": n, "tokens_per_s": tps, "token_p50_ms": p50, "token_p99_ms": p99}

    on = {"generate": [gen(1, 400, 2.0, 5.0), gen(64, 4400, 10.0, 30.0)],
          "predict": [{"clients": 32, "calls_per_s": 150.0}]}
    off = {"generate": [], "predict": [{"clients": 32, "calls_per_s": 25.0}]}
    r = load.ratios(on, off)
    assert r["tokens_per_s_64_over_1"]["value"] == 11.0 and r["tokens_per_s_64_over_1"]["met"]
    p99 = r["token_p99_at_64_over_p50_at_1"]
    assert p99["value"] == 15.0 and not p99["met"]
    assert math.isclose(r["predict_32_batched_over_unbatched"]["value"], 6.0)
    assert "predict_32_batched_over_unbatched" not in load.ratios(on, None)  # no unbatched server given


def test_64_streams_are_compared_with_the_bare_64_row_step_of_the_same_run(tmp_path):
    on = {"generate": [{"clients": 64, "tokens_per_s": 4800.0, "token_p50_ms": 10.0, "token_p99_ms": 30.0}],
          "predict": []}
    r = load.ratios(on, None, t64_ms=8.0)  # 64 / 8 ms = 8000 tokens/s at most
    assert math.isclose(r["tokens_per_s_64_over_64_per_T64"]["value"], 0.6)
    assert r["tokens_per_s_64_over_64_per_T64"]["met"]
    assert r["token_p99_at_64_over_T64"]["value"] == 3.75 and not r["token_p99_at_64_over_T64"]["met"]
    assert "token_p99_at_64_over_T64" not in load.ratios(on, None)  # no T64 measured
    load.make_model_dir(tmp_path)
    assert load.bare_step_64_ms(tmp_path, rows=4, repeats=2) > 0
