"""What rnnctl reports about a run: validation coverage, the n-gram baseline, a progress line that fits."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from client import demo
from client.cli import cli

from .conftest import LM_TEXT

FLAGS = [
    "--hidden-size",
    "12",
    "--embedding-dim",
    "8",
    "--steps",
    "12",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--seed",
    "3",
]


def run(address: str, *args: str, columns: int = 200):
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, ["--address", address, *args])


@pytest.fixture(scope="module")
def trained_run(server_address, tmp_path_factory):
    data = tmp_path_factory.mktemp("report") / "cats.txt"
    data.write_text(LM_TEXT)
    result = run(server_address, "train", str(data), "--name", "report-lm", "--overwrite", *FLAGS)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_train_summary_gives_the_best_ngram_and_the_ratio(trained_run, client):
    out = trained_run.stdout
    metrics = client.get_model("report-lm").metrics
    assert f"over {metrics['validation_items']:,.0f} tokens" in out
    assert (
        f"best n-gram (order {metrics['ngram_order']:.0f}) perplexity {metrics['ngram_perplexity']:.4g}"
        in out
    )
    assert f"the network's is {metrics['perplexity_vs_ngram']:.3g}x that" in out
    assert "bits_per_token" not in out and "bits_per_char" in out  # a char model: one number, not two


def test_demo_reports_the_lstm_beside_the_ngram(trained_run, client):
    with demo.console.capture() as captured:
        demo.report_baseline(client.get_model("report-lm").metrics)
    out = captured.get()
    assert "best n-gram (order" in out and "ratio" in out
    with pytest.raises(demo.DemoFailed, match="no n-gram baseline"):
        demo.report_baseline({"perplexity": 3.0})


def test_client_predict_log_likelihood_gives_each_texts_score(client, lm):
    import math

    (p,) = client.predict(lm, ["the cat"], output="log_likelihood")
    assert p.length == 7 and len(p.log_probs) == 7 and all(v < 0 for v in p.log_probs)
    assert abs(p.log_likelihood - sum(p.log_probs)) < 1e-9
    assert abs(p.perplexity - math.exp(-p.log_likelihood / 7)) < 1e-9
