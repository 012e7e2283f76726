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


@pytest.mark.parametrize("columns", [80, 120])
def test_progress_line_fits_the_terminal_and_cuts_no_number(server_address, tmp_path, columns):
    data = tmp_path / "cats.txt"
    data.write_text(LM_TEXT)
    result = run(
        server_address, "train", str(data), "--name", f"fit-{columns}", "--overwrite", *FLAGS, columns=columns
    )
    assert result.exit_code == 0, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if "12/12" in line]
    assert lines, result.stderr
    for line in lines:
        assert len(line.rstrip()) <= columns and "…" not in line, line
        assert "eta 0:00:" in line and "loss " in line and "val " in line
        assert "bits_per_token" not in line and "bpt" not in line  # a char model: bits per char only
    if columns >= 120:
        assert " bpc " in lines[-1] and "vs n-gram" in lines[-1]


def test_models_show_is_a_table_of_what_the_task_has_and_json_only_with_json(server_address, trained_run):
    import json

    shown = run(server_address, "models", "show", "report-lm").stdout
    assert "{" not in shown and "[" not in shown  # no raw JSON dicts or lists
    for row in (
        "task",
        "language_model",
        "vocabulary",
        "validation perplexity",
        "validated on",
        "baseline",
        "bptt window",
        "optimizer",
    ):
        assert row in shown, row
    assert "input size" not in shown and "labels" not in shown  # nothing a language model does not have
    info = json.loads(run(server_address, "--json", "models", "show", "report-lm").stdout)
    assert info["name"] == "report-lm" and info["metrics"]["ngram_perplexity"] > 0


def test_models_show_for_a_classifier_lists_its_labels(server_address, client):
    from .conftest import CLASSES

    events = list(
        client.train(
            "report-clf",
            task="classification",
            text=CLASSES,
            overwrite=True,
            hidden_size=8,
            embedding_dim=4,
            max_steps=4,
            batch_size=4,
        )
    )
    assert events[-1].state == "succeeded"
    shown = run(server_address, "models", "show", "report-clf").stdout
    assert "labels (2)" in shown and "animal, thing" in shown and "validation accuracy" in shown
    assert "bptt window" not in shown and "baseline" not in shown
