"""Concurrency; idle sequences, job lifecycle, restart, health, reflection."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from server.sequences import SequenceRegistry

from .conftest import CLASSES, LM_TEXT, MODELS
from .helpers import eventually

WORDS = ["the cat sat", "a dog on the mat", "the log", "a cat and a dog sat", "on the mat the cat"]
LONG = pb.TrainingSettings(max_steps=5000, batch_size=8, seq_len=32, checkpoint_every=5)


def reference(stubs, text, top_k=2):
    return stubs.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text=text)], top_k=top_k)
    ).outputs[0]


def ids(steps):
    return [[s.id for s in step.top_k] for step in steps]


def test_sixteen_concurrent_streams_all_get_complete_correct_answers(stubs, trained):
    texts = [WORDS[i % len(WORDS)] + " " * (i // len(WORDS)) + "the"[: i % 3 + 1] for i in range(16)]
    expected = {t: ids(reference(stubs, t).steps) for t in set(texts)}
    start = threading.Barrier(16)

    def run(i):
        text = texts[i]
        chunks = [text[j : j + 3] for j in range(0, len(text), 3)]

        def requests():
            start.wait(10)
            for j, c in enumerate(chunks):  # two sequences per stream, interleaved
                for sid in ("a", "b"):
                    yield ipb.PredictStreamRequest(
                        model="lm",
                        sequence_id=f"{sid}{i}",
                        start=j == 0,
                        end=j == len(chunks) - 1,
                        chunk=pb.SequenceInput(text=c),
                        top_k=2,
                    )

        replies = list(stubs.inference.PredictStream(requests(), timeout=60))
        return (
            {
                sid: ids([s for r in replies if r.sequence_id == f"{sid}{i}" for s in r.output.steps])
                for sid in ("a", "b")
            },
            len(replies),
            len(chunks),
        )

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(run, range(16)))
    for i, (by_seq, n_replies, n_chunks) in enumerate(results):
        assert n_replies == 2 * n_chunks
        assert by_seq["a"] == by_seq["b"] == expected[texts[i]]


def test_concurrent_generation_streams_are_independent_and_deterministic(stubs, trained):
    def run(seed):
        request = ipb.StreamGenerateRequest(
            model="lm", prompt="the", max_new_tokens=20, seed=seed, temperature=1.0
        )
        return [
            r.token.id for r in stubs.inference.StreamGenerate(request, timeout=60) if r.HasField("token")
        ]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(run, [s % 4 for s in range(16)]))
    for i, r in enumerate(results):
        assert r == results[i % 4]


def test_reset_restarts_a_sequence_from_the_initial_state(stubs, trained):
    requests = [
        ipb.PredictStreamRequest(model="lm", sequence_id="x", start=True, chunk=pb.SequenceInput(text="dog")),
        ipb.PredictStreamRequest(sequence_id="x", reset=True, chunk=pb.SequenceInput(text="the c")),
    ]
    replies = list(stubs.inference.PredictStream(iter(requests), timeout=30))
    assert ids(replies[1].output.steps) == ids(reference(stubs, "the c", top_k=1).steps)
    assert replies[1].steps_seen == 5


def test_idle_sequences_are_released_after_the_timeout():
    registry = SequenceRegistry(idle_timeout=0.05, max_open=4)
    try:
        registry.open(1, "s", "lm", object(), None)
        assert len(registry) == 1
        assert registry.reap(now=time.monotonic() + 1) == 1
        with pytest.raises(Exception, match="idle"):
            registry.get(1, "s")
    finally:
        registry.close()


def test_idle_sequence_is_reported_released_in_a_stream(make_server, served, trained):
    server, stubs = make_server(model_dir=served[0].state.config.model_dir, sequence_idle_timeout=0.2)

    def requests():
        yield ipb.PredictStreamRequest(
            model="lm", sequence_id="x", start=True, chunk=pb.SequenceInput(text="a")
        )
        time.sleep(1.5)
        yield ipb.PredictStreamRequest(sequence_id="x", chunk=pb.SequenceInput(text="b"))

    with pytest.raises(grpc.RpcError) as err:
        list(stubs.inference.PredictStream(requests(), timeout=30))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "idle" in err.value.details()


def _start_long_job(stubs, name, steps=5000):
    task, spec, dataset = MODELS["lm"]
    training = pb.TrainingSettings()
    training.CopyFrom(LONG)
    training.max_steps = steps
    call = stubs.training.Train(
        tpb.TrainRequest(
            model=name, task=task, spec=spec, training=training, dataset=dataset, overwrite=True
        ),
        timeout=120,
    )
    events = []
    for reply in call:
        events.append(reply.event)
        if reply.event.step >= 6:
            break
    return call, events[0].job_id


def _wait_state(stubs, job_id, states, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id)).job
        if job.state in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {job.state}")


def test_dropping_the_train_stream_keeps_the_job_and_cancel_job_stops_it(make_server):
    server, stubs = make_server()
    call, job_id = _start_long_job(stubs, "long")
    call.cancel()  # the client goes away ...
    time.sleep(0.5)
    job = stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id)).job
    assert job.state == pb.JOB_STATE_RUNNING  # ... the job does not
    watched = stubs.training.WatchJob(tpb.WatchJobRequest(job_id=job_id, from_sequence=job.event_count))
    stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id))
    tail = [r.event for r in watched]
    assert tail[-1].state == pb.JOB_STATE_CANCELLED and tail[-1].kind == tpb.JOB_EVENT_KIND_STATE
    job = stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id)).job
    assert job.state == pb.JOB_STATE_CANCELLED and job.resumable and 0 < job.step < 5000


def test_restart_keeps_models_and_resumes_interrupted_jobs(make_server, tmp_path):
    model_dir = tmp_path / "persist"
    server, stubs = make_server(model_dir=model_dir)
    small = pb.TrainingSettings(max_steps=3, batch_size=2, seq_len=8)
    done = list(
        stubs.training.Train(
            tpb.TrainRequest(
                model="kept",
                task=pb.TASK_CLASSIFICATION,
                spec=pb.ModelSpec(hidden_size=8),
                training=small,
                dataset=tpb.DatasetSource(text=CLASSES),
            ),
            timeout=60,
        )
    )
    assert done[-1].event.state == pb.JOB_STATE_SUCCEEDED
    before = stubs.inference.Predict(ipb.PredictRequest(model="kept", inputs=[pb.SequenceInput(text="cat")]))
    _, job_id = _start_long_job(stubs, "interrupted", steps=100)
    server.drain(5)  # SIGTERM path: the running job checkpoints and is INTERRUPTED

    server2, stubs2 = make_server(model_dir=model_dir)
    assert "kept" in [m.name for m in stubs2.models.ListModels(mpb.ListModelsRequest()).models]
    after = stubs2.inference.Predict(ipb.PredictRequest(model="kept", inputs=[pb.SequenceInput(text="cat")]))
    assert after == before
    job = stubs2.training.GetJob(tpb.GetJobRequest(job_id=job_id)).job
    assert job.state == pb.JOB_STATE_INTERRUPTED and job.resumable and job.step >= 5
    resumed = [r.event for r in stubs2.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=120)]
    assert resumed[0].state == pb.JOB_STATE_QUEUED and resumed[-1].state == pb.JOB_STATE_SUCCEEDED
    steps = [e.step for e in resumed if e.kind == tpb.JOB_EVENT_KIND_PROGRESS]
    assert min(steps) > 5 and max(steps) == 100  # continued from the checkpoint, not from step 0
    assert stubs2.models.GetModel(mpb.GetModelRequest(model="interrupted")).model.job_id == job_id


def test_a_crashing_worker_fails_the_job_and_the_server_keeps_serving(make_server, monkeypatch):
    import server.jobs.directory as jobs_module

    monkeypatch.setattr(jobs_module, "run_job", _crash)
    server, stubs = make_server()  # spawn: the worker imports _crash from this module
    events = [
        r.event
        for r in stubs.training.Train(
            tpb.TrainRequest(
                model="crash",
                task=pb.TASK_LANGUAGE_MODEL,
                training=pb.TrainingSettings(max_steps=2, batch_size=2, seq_len=8),
                dataset=tpb.DatasetSource(text=LM_TEXT),
            ),
            timeout=60,
        )
    ]
    assert events[-1].state == pb.JOB_STATE_FAILED and "exited with code 3" in events[-1].message
    assert stubs.models.ListModels(mpb.ListModelsRequest()).models == []


def _crash(job, queue, stop):
    import os

    os._exit(3)


def test_upload_then_train_from_the_dataset_id(stubs, trained):
    data = CLASSES.encode()
    parts = [
        tpb.UploadDatasetRequest(
            info=tpb.DatasetInfo(name="c.tsv", format=tpb.DATASET_FORMAT_TSV, size_bytes=len(data))
        )
    ]
    parts += [tpb.UploadDatasetRequest(chunk=data[i : i + 100]) for i in range(0, len(data), 100)]
    reply = stubs.training.UploadDataset(iter(parts))
    assert reply.size_bytes == len(data) and reply.dataset_id.startswith("ds-")
    events = [
        r.event
        for r in stubs.training.Train(
            tpb.TrainRequest(
                model="from-upload",
                task=pb.TASK_CLASSIFICATION,
                spec=pb.ModelSpec(hidden_size=8),
                training=pb.TrainingSettings(max_steps=2),
                dataset=tpb.DatasetSource(dataset_id=reply.dataset_id),
                overwrite=True,
            ),
            timeout=60,
        )
    ]
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED
    stubs.models.DeleteModel(mpb.DeleteModelRequest(model="from-upload"))
    with pytest.raises(grpc.RpcError) as err:
        stubs.models.GetModel(mpb.GetModelRequest(model="from-upload"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_reports_every_service_serving(stubs, trained):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(stubs.channel)
    for service in ("", "rnn.v1.TrainingService", "rnn.v1.InferenceService", "rnn.v1.ModelService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING, service


def test_reflection_lists_the_services(stubs):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    replies = list(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    )
    names = {s.name for s in replies[0].list_services_response.service}
    assert {
        "rnn.v1.TrainingService",
        "rnn.v1.InferenceService",
        "rnn.v1.ModelService",
        "grpc.health.v1.Health",
    } <= names
    files = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="rnn.v1.InferenceService")])
        )
    )
    assert files[0].file_descriptor_response.file_descriptor_proto


def test_metrics_count_calls_by_method_and_status(stubs, served, trained):
    with pytest.raises(grpc.RpcError):
        stubs.models.GetModel(mpb.GetModelRequest(model="nope"))
    metrics = served[0].state.metrics
    assert eventually(lambda: 'rnn_grpc_calls_total{method="GetModel",status="NOT_FOUND"}' in metrics.text())
    text = metrics.text()
    assert 'rnn_grpc_calls_total{method="Train",status="OK"}' in text
    assert 'rnn_training_jobs{state="SUCCEEDED"}' in text
    assert "rnn_grpc_call_seconds_bucket" in text and "rnn_tokens_generated_total" in text


def test_jobs_beyond_max_training_jobs_wait_queued_and_start_in_turn(make_server, tmp_path):
    server, stubs = make_server(model_dir=tmp_path / "q")  # max_training_jobs=1
    call, first = _start_long_job(stubs, "first")
    small = pb.TrainingSettings(max_steps=2, batch_size=2, seq_len=8)
    task, spec, dataset = MODELS["lm"]
    second = stubs.training.Train(
        tpb.TrainRequest(model="second", task=task, spec=spec, training=small, dataset=dataset), timeout=60
    )
    queued = next(second).event
    assert queued.state == pb.JOB_STATE_QUEUED
    time.sleep(0.3)
    assert stubs.training.GetJob(tpb.GetJobRequest(job_id=queued.job_id)).job.state == pb.JOB_STATE_QUEUED
    stubs.training.CancelJob(tpb.CancelJobRequest(job_id=first))
    rest = [r.event for r in second]
    assert [e.state for e in rest if e.kind == tpb.JOB_EVENT_KIND_STATE] == [
        pb.JOB_STATE_RUNNING,
        pb.JOB_STATE_SUCCEEDED,
    ]
    job_dir = tmp_path / "q" / ".jobs" / queued.job_id
    assert (job_dir / "job.json").is_file() and not (job_dir / "ckpt").exists()  # working files released
    assert not list(job_dir.glob("data*"))
    call.cancel()
