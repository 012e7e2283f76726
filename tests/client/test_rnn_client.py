"""RnnClient against a real in-process server: plain values out, streams, sessions, uploads, jobs."""

from __future__ import annotations

import click
import numpy as np
import pytest

from client import GeneratedToken, GenerationFinish, errors
from client.commands._common import follow
from client.console import Console
from client.context import AppContext

from .conftest import LM_TEXT, TINY

LONG = dict(TINY, max_steps=100_000)  # a job that runs until cancelled


def test_health_is_serving(client):
    assert client.health() == "serving"


def test_predict_returns_plain_values(client, lm, classifier):
    [p] = client.predict(lm, ["the cat"], top_k=2)
    assert p.task == "language_model" and p.length == 7 and len(p.top_k) == 7
    assert all(isinstance(s.label, str) and 0 <= s.probability <= 1 for step in p.top_k for s in step)
    [d] = client.predict(lm, ["the cat"], output="distribution")
    assert isinstance(d.distribution, np.ndarray) and d.distribution.shape[0] == 7
    np.testing.assert_allclose(d.distribution.sum(axis=1), 1.0, atol=1e-5)
    c1, c2 = client.predict(classifier, ["cat", "mug"], top_k=2)
    assert {c1.label, c2.label} <= {"animal", "thing"} and len(c1.top_k) == 1


def test_predict_accepts_token_ids(client, lm):
    [by_text] = client.predict(lm, ["the"], output="distribution")
    ids = [s.id for s in client.predict(lm, ["the"], top_k=1)[0].top_k[0]]
    assert ids  # ids are plain ints the model knows
    [by_ids] = client.predict(lm, [[ids[0]]], output="distribution")
    assert by_ids.distribution.shape == (1, by_text.distribution.shape[1])


@pytest.mark.parametrize(("sequences", "message"), [
    ([], "sequences: expected a non-empty list"),
    ("the cat", "sequences: expected a non-empty list"),
    ([b"bytes"], r"sequences\[0\]: expected a str"),
    ([[]], r"sequences\[0\]: expected a non-empty sequence"),
    ([[1.0, float("nan")]], r"sequences\[0\]: expected finite values"),
])
def test_predict_rejects_bad_sequences_before_calling(client, sequences, message):
    with pytest.raises(errors.InvalidArgument, match=message):
        client.predict("tiny-lm", sequences)


def test_server_side_invalid_argument_carries_field_violations(client, lm):
    with pytest.raises(errors.InvalidArgument) as info:
        client.predict(lm, [[1.5, 2.5]])  # values sent to a text model
    assert info.value.field_violations and info.value.field_violations[0].field.startswith("inputs[0]")


def test_streaming_session_equals_whole_sequence_prediction(client, lm):
    [whole] = client.predict(lm, ["the cat sat"], output="distribution")
    with client.predict_stream(lm, output="distribution") as session:
        first = session.send("a", "the ca")
        second = session.send("a", "t sat")
        assert (first.steps_seen, second.steps_seen) == (6, 11)
        chunks = np.vstack([first.prediction.distribution, second.prediction.distribution])
        np.testing.assert_allclose(chunks, whole.distribution, atol=1e-5)
        restarted = session.send("a", "the ca", reset=True)
        np.testing.assert_allclose(restarted.prediction.distribution, first.prediction.distribution,
                                   atol=1e-6)
        assert session.end("a").ended


def test_streaming_unknown_sequence_is_an_error(client, lm):
    with client.predict_stream(lm) as session:
        session.send("a", "the")
        with pytest.raises(errors.RnnError):
            session.send("b", "x", start=False)


def test_generate_yields_tokens_then_finish(client, lm):
    items = list(client.generate(lm, "the ", max_new_tokens=12, seed=5, temperature=0.8))
    *tokens, finish = items
    assert all(isinstance(t, GeneratedToken) for t in tokens) and isinstance(finish, GenerationFinish)
    assert finish.text == "".join(t.text for t in tokens)
    assert finish.generated_tokens == len(tokens) <= 12
    again = [t.text for t in client.generate(lm, "the ", max_new_tokens=12, seed=5, temperature=0.8)
             if isinstance(t, GeneratedToken)]
    assert again == [t.text for t in tokens]


def test_generate_stops_on_break(client, lm):
    stream = client.generate(lm, "the ", max_new_tokens=400, temperature=1.0, seed=1)
    first = next(stream)
    stream.close()  # cancels the call; the client stays usable
    assert isinstance(first, GeneratedToken | GenerationFinish)
    assert client.health() == "serving"


def test_generate_rejects_bad_options(client, lm):
    with pytest.raises(errors.InvalidArgument, match="max_new_tokens"):
        client.generate(lm, "the", max_new_tokens=0)
    with pytest.raises(errors.InvalidArgument, match="stop"):
        client.generate(lm, "the", stop="x")


def test_upload_then_train_on_dataset_id(client, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(LM_TEXT)
    uploaded = client.upload_dataset(path)
    assert uploaded.size_bytes == path.stat().st_size and len(uploaded.sha256) == 64
    events = list(client.train("from-upload", dataset_id=uploaded.dataset_id, overwrite=True, **TINY))
    assert events[-1].state == "succeeded"


def test_train_needs_exactly_one_data_source(client, tmp_path):
    with pytest.raises(errors.InvalidArgument, match="exactly one of path, text or dataset_id"):
        client.train("x", **TINY)
    with pytest.raises(errors.InvalidArgument, match="exactly one of"):
        client.train("x", text="abc", dataset_id="d", **TINY)
    with pytest.raises(errors.InvalidArgument, match="path: expected an existing file"):
        client.train("x", path=tmp_path / "missing.txt", **TINY)
    with pytest.raises(errors.InvalidArgument, match="cell: expected one of"):
        client.train("x", text="abc", cell="transformer")


def test_existing_model_name_is_already_exists(client, lm):
    with pytest.raises(errors.AlreadyExists):
        list(client.train(lm, text=LM_TEXT, **TINY))


def test_watch_replays_events_and_get_job_agrees(client, lm):
    job_id = client.get_model(lm).job_id
    events = list(client.watch_job(job_id))
    assert [e.sequence for e in events] == list(range(len(events)))
    assert events[-1].is_final and client.get_job(job_id).state == events[-1].state == "succeeded"
    tail = list(client.watch_job(job_id, from_sequence=len(events) - 1))
    assert tail == events[-1:]


def test_cancel_a_running_job(client):
    events = client.train("long-run", text=LM_TEXT, overwrite=True, **LONG)
    for ev in events:
        if ev.kind == "progress":
            break
    client.cancel_job(ev.job_id)
    final = [e for e in client.watch_job(ev.job_id) if e.is_final]
    assert final and final[-1].state == "cancelled"


def test_ctrl_c_during_training_can_cancel_the_job(client, server_address):
    app = AppContext(address=server_address, timeout=30, console=Console())
    events = client.train("interrupted", text=LM_TEXT, overwrite=True, **LONG)

    def interrupted_after_first_progress():
        for ev in events:
            yield ev
            if ev.kind == "progress":
                raise KeyboardInterrupt

    with pytest.raises(click.exceptions.Exit) as info:
        follow(app, interrupted_after_first_progress(), on_interrupt="cancel")
    assert info.value.exit_code == 130
    job = client.list_jobs(model="interrupted")[0]
    final = [e for e in client.watch_job(job.job_id) if e.is_final]
    assert final[-1].state == "cancelled"
    app.close()


def test_unknown_job_is_not_found(client):
    with pytest.raises(errors.NotFound):
        client.get_job("job-0123456789ab")


def test_large_training_file_is_uploaded_first(client, tmp_path, monkeypatch):
    import client.rnn_client as rc

    uploads = []
    real_upload = rc.RnnClient.upload_dataset

    def spy(self, path, **kw):
        uploads.append(path)
        return real_upload(self, path, **kw)

    monkeypatch.setattr(rc, "INLINE_DATA_BYTES", 100)
    monkeypatch.setattr(rc.RnnClient, "upload_dataset", spy)
    path = tmp_path / "big.txt"
    path.write_text(LM_TEXT)
    events = list(client.train("uploaded-path", path=path, overwrite=True, **TINY))
    assert events[-1].state == "succeeded" and uploads == [path]


def test_tagger_returns_one_label_per_word(client, tagger):
    [p] = client.predict(tagger, ["the cat ran"])
    assert p.tokens == ["the", "cat", "ran"] and len(p.labels) == 3
    assert set(p.labels) <= {"DET", "NOUN", "VERB"}


def test_forecaster_values_and_rollout(client, forecaster):
    series = np.sin(np.arange(6) / 3)
    [p] = client.predict(forecaster, [series])
    assert p.values is not None and p.values.shape == (1, 1) and np.isfinite(p.values).all()
    *tokens, finish = client.generate(forecaster, series, max_new_tokens=3)
    assert [t.index for t in tokens] == [0, 1, 2] and all(isinstance(t.value, float) for t in tokens)
    assert tokens[0].value == pytest.approx(p.values[0, 0], rel=1e-6)
    assert finish.reason == "length"
    with pytest.raises(errors.InvalidArgument, match="prompt: expected text or a float series"):
        client.generate(forecaster, np.arange(6))
