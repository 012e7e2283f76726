"""Scale-out on the PostgreSQL store: server and rnn-worker processes share only a database (no files).

Every server has its own empty model directory (its local cache) and `--max-training-jobs 0`; the jobs run
in rnn-worker processes. Leases are 2 s so that a dead worker's job is INTERRUPTED quickly.
"""

from __future__ import annotations

import queue
import signal
import threading
import time

import grpc
import psycopg
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from tests.security.helpers import LM_TEXT

TINY = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, embedding_dim=4)
# --deterministic: Predict results are compared exactly (old or new model, never a mix), and concurrent calls
# may be batched together, bit-identical to a lone call only in that mode (docs/performance.md, generation
# kernels)
SERVE = ("--max-training-jobs", "0", "--job-lease-seconds", "2", "--deterministic")


def train_request(name: str, steps: int, **kw) -> tpb.TrainRequest:
    training = pb.TrainingSettings(max_steps=steps, batch_size=2, seq_len=8, checkpoint_every=5, seed=7)
    return tpb.TrainRequest(model=name, task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=training,
                            dataset=tpb.DatasetSource(text=LM_TEXT), **kw)


def predict(stubs, name: str) -> ipb.PredictResponse:
    return stubs.inference.Predict(ipb.PredictRequest(
        model=name, inputs=[pb.SequenceInput(text="the cat sat")], output=pb.OUTPUT_KIND_DISTRIBUTION),
        timeout=30)


def export(stubs, name: str) -> bytes:
    return b"".join(r.chunk for r in stubs.models.ExportOnnx(mpb.ExportOnnxRequest(model=name), timeout=60))


def follow(stream) -> queue.Queue:
    events: queue.Queue = queue.Queue()

    def run():
        try:
            for reply in stream:
                events.put(reply.event)
        except grpc.RpcError as exc:
            events.put(exc)
        events.put(None)

    threading.Thread(target=run, daemon=True).start()
    return events


def wait_step(events: queue.Queue, step: int = 1) -> str:
    while True:
        event = events.get(timeout=90)
        assert isinstance(event, tpb.JobEvent), event
        if event.kind == tpb.JOB_EVENT_KIND_PROGRESS and event.step >= step:
            return event.job_id


def drain(events: queue.Queue) -> list:
    out = []
    while (event := events.get(timeout=90)) is not None:
        out.append(event)
    return out


def wait_state(stubs, job_id: str, state: int, timeout: float = 60) -> tpb.Job:
    deadline = time.monotonic() + timeout
    while True:
        job = stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
        if job.state == state or time.monotonic() > deadline:
            assert job.state == state, job
            return job
        time.sleep(0.2)


def test_a_model_trained_through_a_is_listed_served_and_exported_by_b_and_retraining_swaps_it(
        pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    b = procs.server(pg_url, tmp_path / "b", *SERVE)
    c = procs.server(pg_url, tmp_path / "c", *SERVE)
    procs.worker(pg_url)
    first = [r.event for r in a.stubs.training.Train(train_request("lm", 10), timeout=120)]
    assert first[-1].state == pb.JOB_STATE_SUCCEEDED, first[-1]
    assert [m.name for m in b.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models] == ["lm"]
    old_b, old_a = predict(b.stubs, "lm"), predict(a.stubs, "lm")
    assert old_b == old_a
    onnx = export(b.stubs, "lm")
    assert onnx == export(a.stubs, "lm") and len(onnx) > 1000

    # retrain under load: every Predict on B answers with the old or the new model, never anything else
    seen, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            seen.append(predict(b.stubs, "lm"))

    def load_c():
        while not stop.is_set():
            seen.append(predict(c.stubs, "lm"))

    threads = [threading.Thread(target=load), threading.Thread(target=load_c)]
    for t in threads:
        t.start()
    second = [r.event for r in a.stubs.training.Train(
        train_request("lm", 20, overwrite=True), timeout=120)]
    assert second[-1].state == pb.JOB_STATE_SUCCEEDED
    new_a = predict(a.stubs, "lm")
    deadline = time.monotonic() + 5
    while predict(b.stubs, "lm") != new_a and time.monotonic() < deadline:
        time.sleep(0.01)
    swapped = time.monotonic()
    stop.set()
    for t in threads:
        t.join()
    assert new_a != old_a and predict(b.stubs, "lm") == new_a
    deadline = time.monotonic() + 5
    while predict(c.stubs, "lm") != new_a and time.monotonic() < deadline:
        time.sleep(0.01)
    assert predict(c.stubs, "lm") == new_a
    assert seen and all(r in (old_b, new_a) for r in seen)
    assert time.monotonic() - swapped < 5

    # DeleteModel on B: A no longer has it
    b.stubs.models.DeleteModel(mpb.DeleteModelRequest(model="lm"), timeout=20)
    for server in (a, c):
        with pytest.raises(grpc.RpcError) as err:
            predict(server.stubs, "lm")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # nothing was shared on disk: each replica's directory holds only its own cache
    for name in "abc":
        assert not (tmp_path / name / "lm").exists() and not (tmp_path / name / ".jobs").exists()


def test_watchjob_on_b_follows_a_job_a_worker_runs_and_canceljob_on_b_cancels_it(pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    b = procs.server(pg_url, tmp_path / "b", *SERVE)
    procs.worker(pg_url)
    events = follow(a.stubs.training.Train(train_request("long", 200_000), timeout=120))
    job_id = wait_step(events)
    watched = follow(b.stubs.training.WatchJob(tpb.WatchJobRequest(job_id=job_id), timeout=120))
    live = wait_step(watched, 2)
    assert live == job_id
    job = b.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_RUNNING
    asked = time.monotonic()
    b.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=20)
    tail = drain(watched)
    assert tail[-1].state == pb.JOB_STATE_CANCELLED and time.monotonic() - asked < 10
    seqs = [e.sequence for e in tail]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert drain(events)[-1].state == pb.JOB_STATE_CANCELLED  # A's Train stream saw it end too
    assert b.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job.resumable


def test_kill9_of_a_worker_interrupts_the_job_and_another_replica_resumes_it_to_the_same_weights(
        pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    b = procs.server(pg_url, tmp_path / "b", *SERVE)
    procs.worker(pg_url)
    reference = [r.event for r in a.stubs.training.Train(train_request("ref", 300), timeout=180)]
    assert reference[-1].state == pb.JOB_STATE_SUCCEEDED
    procs.started[-1].kill9()

    doomed = procs.worker(pg_url)
    events = follow(a.stubs.training.Train(train_request("resumed", 300), timeout=180))
    job_id = wait_step(events, 12)  # past the checkpoint at step 10
    doomed.kill9()
    job = wait_state(b.stubs, job_id, pb.JOB_STATE_INTERRUPTED, timeout=30)  # lease 2 s
    assert job.resumable and "lease" in job.message
    procs.worker(pg_url)
    resumed = [r.event for r in b.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=180)]
    assert "resuming from the last checkpoint" in resumed[0].message
    assert resumed[-1].state == pb.JOB_STATE_SUCCEEDED
    steps = [e.step for e in resumed if e.kind == tpb.JOB_EVENT_KIND_PROGRESS]
    assert min(steps) > 10 and max(steps) == 300
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT (record->>'attempts')::int FROM rnn_jobs WHERE job_id = %s",
                            (job_id,)).fetchone()[0] == 2
    # the same final weights as the uninterrupted run: identical distributions and identical ONNX weights
    assert predict(a.stubs, "resumed").outputs == predict(b.stubs, "ref").outputs
    assert _onnx_weights(export(b.stubs, "resumed")) == _onnx_weights(export(a.stubs, "ref"))


def _onnx_weights(data: bytes) -> dict[str, bytes]:
    import onnx

    return {t.name: t.raw_data or onnx.numpy_helper.to_array(t).tobytes()
            for t in onnx.load_from_string(data).graph.initializer}


def test_two_workers_racing_for_20_queued_jobs_run_each_exactly_once(pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    ids = []
    for i in range(20):  # queued before any worker exists
        first = next(iter(a.stubs.training.Train(train_request(f"m{i}", 2), timeout=30)))
        ids.append(first.event.job_id)
    workers = [procs.worker(pg_url), procs.worker(pg_url)]
    for job_id in ids:
        wait_state(a.stubs, job_id, pb.JOB_STATE_SUCCEEDED, timeout=240)
    with psycopg.connect(pg_url) as conn:
        running = conn.execute(
            "SELECT job_id, count(*) FROM rnn_job_events WHERE event->>'state' = 'RUNNING' "
            "AND event->>'kind' = 'state' GROUP BY job_id").fetchall()
        attempts = conn.execute("SELECT (record->>'attempts')::int FROM rnn_jobs").fetchall()
    assert sorted(running) == sorted((job_id, 1) for job_id in ids)
    assert [a for (a,) in attempts] == [1] * 20
    claimed = ["\n".join(w.lines).count('"job claimed"') for w in workers]
    assert sum(claimed) == 20, claimed
    listed = a.stubs.models.ListModels(mpb.ListModelsRequest(page_size=100), timeout=20).models
    names = {m.name for m in listed}
    assert names == {f"m{i}" for i in range(20)}


def test_the_database_restarted_while_replicas_serve(postgres, pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    procs.worker(pg_url)
    assert [r.event for r in a.stubs.training.Train(train_request("lm", 4), timeout=120)][-1].state == \
        pb.JOB_STATE_SUCCEEDED
    postgres.stop()
    try:
        for call in (lambda: a.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20),
                     lambda: a.stubs.training.ListJobs(tpb.ListJobsRequest(), timeout=20),
                     lambda: predict(a.stubs, "lm")):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
            assert "RNN_STORE" in err.value.details()
    finally:
        postgres.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            names = [m.name for m in a.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models]
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.5)
    assert names == ["lm"]
    assert predict(a.stubs, "lm").outputs
    assert [r.event for r in a.stubs.training.Train(train_request("lm2", 3), timeout=120)][-1].state == \
        pb.JOB_STATE_SUCCEEDED


def test_a_database_outage_longer_than_the_lease_stops_the_job_and_the_same_worker_resumes_it(
        postgres, pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    worker = procs.worker(pg_url, "--lease-seconds", "2")
    events = follow(a.stubs.training.Train(train_request("long", 200_000), timeout=120))
    job_id = wait_step(events, 12)
    postgres.stop()
    try:
        time.sleep(4)  # > 3/4 of the lease without a renewal: the worker stops the job and writes nothing
    finally:
        postgres.start()
    assert any("job lease lost" in line for line in worker.lines), worker.lines[-10:]
    job = wait_state(a.stubs, job_id, pb.JOB_STATE_INTERRUPTED, timeout=30)
    assert job.resumable
    resumed = follow(a.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=120))
    assert wait_step(resumed, job.step + 1) == job_id  # the same rnn-worker, still running, took it again
    a.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=20)
    assert drain(resumed)[-1].state == pb.JOB_STATE_CANCELLED
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT (record->>'attempts')::int FROM rnn_jobs WHERE job_id = %s",
                            (job_id,)).fetchone()[0] == 2


def test_sigterm_of_a_worker_checkpoints_and_records_the_job_interrupted_at_once(pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    worker = procs.worker(pg_url, "--lease-seconds", "60")  # not the lease: the worker says so itself
    events = follow(a.stubs.training.Train(train_request("long", 200_000), timeout=120))
    job_id = wait_step(events, 12)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
    tail = drain(events)
    assert tail[-1].state == pb.JOB_STATE_INTERRUPTED and "shut down" in tail[-1].message
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM rnn_job_checkpoints WHERE job_id = %s AND "
                            "file = 'latest/manifest.json'", (job_id,)).fetchone()[0] == 1
    procs.worker(pg_url)
    resumed = follow(a.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=120))
    first = resumed.get(timeout=30)
    assert "resuming from the last checkpoint" in first.message
    a.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=20)
    assert drain(resumed)[-1].state == pb.JOB_STATE_CANCELLED


def test_a_job_interrupted_after_an_evaluation_resumes_with_its_best_weights(pg_url, procs, tmp_path):
    """The checkpoint kept in the database holds best/ beside latest/: a resume after an evaluation
    (best_step set) reads both (it failed with 'No such file ... ckpt/best' when only latest/ was kept)."""
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    worker = procs.worker(pg_url, "--lease-seconds", "60")
    events = follow(a.stubs.training.Train(train_request("evaluated", 200_000), timeout=120))
    job_id = wait_step(events, 110)  # past the evaluation at step 100 (eval_every)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0
    assert drain(events)[-1].state == pb.JOB_STATE_INTERRUPTED
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT file FROM rnn_job_checkpoints WHERE job_id = %s", (job_id,))
        kept = {f for (f,) in rows}
    assert {"latest/manifest.json", "best/manifest.json"} <= kept, kept
    procs.worker(pg_url)
    resumed = follow(a.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=120))
    assert "resuming from the last checkpoint" in resumed.get(timeout=30).message
    wait_step(resumed, 130)  # the resumed run trains on (it FAILED at start before)
    a.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=20)
    last = drain(resumed)[-1]
    assert last.state == pb.JOB_STATE_CANCELLED, last.message
