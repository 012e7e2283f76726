"""rnnctl end to end against a real in-process server: train, models, predict, generate, export, plot."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from client.cli import EXIT_NOT_FOUND, cli

from .conftest import LM_TEXT, TINY

TINY_FLAGS = ["--hidden-size", "12", "--embedding-dim", "8", "--steps", "12", "--batch-size", "4",
              "--seq-len", "16", "--seed", "3"]


def run(address: str, *args: str, json_mode: bool = False):
    prefix = ["--address", address] + (["--json"] if json_mode else [])
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, prefix + list(args))


def ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def cli_lm(server_address, tmp_path_factory) -> str:
    data = tmp_path_factory.mktemp("data") / "cats.txt"
    data.write_text(LM_TEXT)
    result = run(server_address, "train", str(data), "--name", "cli-lm", "--cell", "lstm", "--overwrite",
                 *TINY_FLAGS)
    ok(result)
    assert "trained model 'cli-lm'" in result.stdout
    assert "12/12" in result.stderr  # the progress bar reached the last step
    assert "loss " in result.stderr and "val " in result.stderr
    return "cli-lm"


def test_train_json_prints_the_finished_job(server_address, tmp_path):
    data = tmp_path / "cats.txt"
    data.write_text(LM_TEXT)
    out = ok(run(server_address, "train", str(data), "--name", "cli-json", "--overwrite", *TINY_FLAGS,
                 json_mode=True))
    job = json.loads(out)
    assert (job["model"], job["state"], job["step"]) == ("cli-json", "succeeded", 12)


def test_train_without_data_is_a_usage_error(server_address):
    result = run(server_address, "train")
    assert result.exit_code == 2 and "expected a DATA file" in result.output


def test_models_list_and_show(server_address, cli_lm):
    assert cli_lm in ok(run(server_address, "models", "list"))
    listed = json.loads(ok(run(server_address, "models", "list", json_mode=True)))
    assert cli_lm in [m["name"] for m in listed]
    shown = ok(run(server_address, "models", "show", cli_lm))
    assert "language_model" in shown and "lstm" in shown
    info = json.loads(ok(run(server_address, "models", "show", cli_lm, json_mode=True)))
    assert (info["name"], info["task"], info["spec"]["cell"], info["spec"]["hidden_size"]) == (
        cli_lm, "language_model", "lstm", 12)


def test_unknown_model_exits_non_zero_naming_the_model(server_address):
    result = run(server_address, "models", "show", "no-such-model")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "no-such-model" in result.stderr


def test_predict_language_model_returns_next_token_per_step(server_address, cli_lm):
    out = json.loads(ok(run(server_address, "predict", cli_lm, "the cat", "a dog", "--top-k", "3",
                            json_mode=True)))
    assert [p["input"] for p in out] == ["the cat", "a dog"]
    assert [len(p["top_k"]) for p in out] == [7, 5]  # one output per character
    probs = [s[2] for s in out[0]["top_k"][0]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    assert ok(run(server_address, "predict", cli_lm, "the cat")).startswith("the cat  ->  next: '")


def test_predict_classifier_prints_label_with_probability(server_address, classifier):
    out = ok(run(server_address, "predict", classifier, "cat", "mug", "--top-k", "2"))
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert all("animal" in line and "thing" in line for line in lines)


def test_generate_streams_text_and_json_has_tokens(server_address, lm):
    out = ok(run(server_address, "generate", lm, "the ", "--max-new-tokens", "15", "--seed", "1"))
    assert out.startswith("the ")
    data = json.loads(ok(run(server_address, "generate", lm, "the ", "--max-new-tokens", "15", "--seed", "1",
                             json_mode=True)))
    assert data["text"] == "".join(t["text"] for t in data["tokens"])
    assert out.rstrip("\n") == "the " + data["text"]  # same seed, same text
    assert data["finish_reason"] in ("length", "end_of_sequence")
    assert all(t["logprob"] <= 0 for t in data["tokens"])


def test_export_writes_an_onnx_file_that_loads(server_address, lm, tmp_path):
    path = tmp_path / "lm.onnx"
    info = json.loads(ok(run(server_address, "export", lm, "-o", str(path), json_mode=True)))
    assert path.stat().st_size == info["size_bytes"] > 0
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    step = tmp_path / "lm.step.onnx"
    ok(run(server_address, "export", lm, "-o", str(step), "--graph", "step"))
    assert step.stat().st_size > 0


def test_export_of_unknown_model_leaves_no_file(server_address, tmp_path):
    result = run(server_address, "export", "ghost", "-o", str(tmp_path / "ghost.onnx"))
    assert result.exit_code == EXIT_NOT_FOUND and "ghost" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_plot_writes_a_png(server_address, cli_lm, tmp_path):
    path = tmp_path / "curves.png"
    out = json.loads(ok(run(server_address, "plot", cli_lm, "-o", str(path), json_mode=True)))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert out["points"]["train_loss"] >= 1


def test_jobs_list_watch_and_cancel_finished_job(server_address, lm, client):
    jobs = json.loads(ok(run(server_address, "jobs", "list", "--model", lm, json_mode=True)))
    assert jobs and all(j["model"] == lm for j in jobs)
    job_id = jobs[0]["job_id"]
    assert job_id in ok(run(server_address, "jobs", "list"))
    watched = json.loads(ok(run(server_address, "jobs", "watch", job_id, json_mode=True)))
    assert watched["state"] == "succeeded"
    result = run(server_address, "jobs", "cancel", job_id)  # already finished: refused or a no-op
    assert result.exit_code in (0, 1) and "Traceback" not in result.output


def test_delete_model(server_address, client, tmp_path):
    list(client.train("to-delete", text=LM_TEXT, overwrite=True, **TINY))
    assert json.loads(ok(run(server_address, "models", "delete", "to-delete", "--yes", json_mode=True))) == {
        "deleted": "to-delete"}
    assert run(server_address, "models", "show", "to-delete").exit_code == EXIT_NOT_FOUND


def test_json_flag_also_works_after_the_command(server_address, cli_lm):
    result = CliRunner().invoke(cli, ["--address", server_address, "models", "list", "--json"])
    assert cli_lm in [m["name"] for m in json.loads(ok(result))]


def test_predict_tagger_prints_word_label_pairs(server_address, tagger):
    out = ok(run(server_address, "predict", tagger, "the cat ran"))
    pairs = out.split("->")[1].split()
    assert [p.split("/")[0] for p in pairs] == ["the", "cat", "ran"]


def test_forecast_predict_and_generate_with_values(server_address, forecaster):
    series = "0,0.33,0.62,0.84,0.97,1.0"
    predicted = float(ok(run(server_address, "predict", forecaster, "--values", series)).split("->")[1])
    out = ok(run(server_address, "generate", forecaster, series, "--values", "-n", "3"))
    values = [float(x) for x in out.split()]
    assert len(values) == 3 and values[0] == pytest.approx(predicted, rel=1e-5)


def test_train_on_unusable_data_fails_with_a_readable_message(server_address, tmp_path):
    data = tmp_path / "plain.tsv"
    data.write_text("no tabs here\njust lines\n")
    result = run(server_address, "train", str(data), "--task", "classification", *TINY_FLAGS)
    assert result.exit_code == 1, result.output
    assert "invalid request: dataset" in result.stderr and "Traceback" not in result.output


def test_one_to_many_generates_from_a_label_without_echoing_a_prompt(server_address, name_generator):
    args = ["generate", name_generator, "--label", "Japanese", "-n", "8", "--seed", "2"]
    data = json.loads(ok(run(server_address, *args, json_mode=True)))
    assert ok(run(server_address, *args)) == data["text"] + "\n"
    assert 0 < len(data["tokens"]) <= 8
    bad = run(server_address, "generate", name_generator, "--label", "Klingon")
    assert bad.exit_code == 1 and "Klingon" in bad.stderr
