"""kill -9 the real server during training, during a model save and during an upload, then restart it.

After every crash: models complete before are byte-identical and loadable, no partial model is listed, the
interrupted job is INTERRUPTED and resumes from its last checkpoint, and no partial upload survives.
"""

from __future__ import annotations

import os
import queue
import threading
import time

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from tests.security.helpers import LM_TEXT, save_tiny_models

from .proc import ServerProcess, tree_digest, wait_gone
from .proc import start_server as _start

TINY = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, embedding_dim=4)
TINY_MODELS = ["clf", "fc", "lm"]


def _train_request(name: str, spec=TINY, steps: int = 1500, checkpoint_every: int = 50, **extra):
    training = pb.TrainingSettings(max_steps=steps, batch_size=2, seq_len=8,
                                   checkpoint_every=checkpoint_every)
    return tpb.TrainRequest(model=name, task=pb.TASK_LANGUAGE_MODEL, spec=spec, training=training,
                            dataset=tpb.DatasetSource(text=LM_TEXT), **extra)


def _assert_models_intact(server: ServerProcess, models, digests: dict[str, dict[str, str]]) -> None:
    """The tiny models are byte-identical, listed, loadable; nothing else is listed; no leftovers remain."""
    for name, digest in digests.items():
        assert tree_digest(models / name) == digest, name
    listed = [m.name for m in server.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models]
    assert listed == sorted(digests)
    for name in digests:
        assert server.stubs.models.GetModel(mpb.GetModelRequest(model=name), timeout=20).model.name == name
    request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the")])
    reply = server.stubs.inference.Predict(request, timeout=20)
    assert reply.outputs[0].length == 3
    leftovers = [p.name for p in models.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []


def _resume_to_the_end(server: ServerProcess, job_id: str) -> list:
    call = server.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=120)
    events = [r.event for r in call]
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1]
    return events


def test_kill9_during_training_leaves_an_interrupted_job_that_resumes_from_its_checkpoint(tmp_path, servers):
    models = tmp_path / "models"
    save_tiny_models(models)
    digests = {name: tree_digest(models / name) for name in TINY_MODELS}
    server = _start(servers, models)
    checkpoint_step, job_id = None, ""
    for reply in server.stubs.training.Train(_train_request("trained"), timeout=120):
        job_id = reply.event.job_id
        if reply.event.kind == tpb.JOB_EVENT_KIND_CHECKPOINT:
            checkpoint_step = reply.event.step
            break
    assert checkpoint_step, "no checkpoint was reported before the job ended"
    workers = server.children()
    assert workers, "the training worker should be a child of the server"
    server.kill9()
    assert wait_gone(workers, 20) == [], "an orphaned training worker kept running after the server died"

    server = _start(servers, models)
    job = server.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_INTERRUPTED and job.resumable
    _assert_models_intact(server, models, digests)  # "trained" never completed, so it is not listed

    events = _resume_to_the_end(server, job_id)
    steps = [e.step for e in events if e.kind == tpb.JOB_EVENT_KIND_PROGRESS and e.step]
    assert steps and steps[0] > checkpoint_step, "the resumed job started over instead of from its checkpoint"
    assert "resuming from the last checkpoint" in " ".join(e.message for e in events)
    listed = [m.name for m in server.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models]
    assert listed == sorted([*TINY_MODELS, "trained"])
    server.stubs.inference.Predict(ipb.PredictRequest(model="trained", inputs=[pb.SequenceInput(text="the")]),
                                   timeout=20)


def _kill_when_saving(server: ServerProcess, models, name: str, timeout: float = 60.0) -> bool:
    """Poll for `name`'s temporary save directory and SIGKILL server and workers the moment it appears."""
    deadline = time.monotonic() + timeout
    prefix = f".{name}.tmp-"
    while time.monotonic() < deadline:
        if any(entry.startswith(prefix) for entry in os.listdir(models)):
            server.kill_all()
            return True
        if server.proc.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def test_kill9_during_a_model_save_keeps_the_old_model_whole(tmp_path, servers):
    """Replacing `lm` with a big model, killed mid-save: `lm` is the old, complete model after restart."""
    models = tmp_path / "models"
    save_tiny_models(models)
    digests = {name: tree_digest(models / name) for name in TINY_MODELS}
    server = _start(servers, models)
    big = pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=1024, embedding_dim=64)
    call = server.stubs.training.Train(_train_request("lm", big, steps=1, checkpoint_every=0, overwrite=True),
                                       timeout=120)
    first = next(call).event
    assert _kill_when_saving(server, models, "lm"), "the save was never observed"
    with pytest.raises(grpc.RpcError):
        list(call)

    server = _start(servers, models)
    _assert_models_intact(server, models, digests)  # the half-written replacement is gone, lm is whole
    job = server.stubs.training.GetJob(tpb.GetJobRequest(job_id=first.job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_INTERRUPTED and job.resumable


def test_kill9_during_an_upload_leaves_no_partial_dataset(tmp_path, servers):
    models = tmp_path / "models"
    save_tiny_models(models)
    digests = {name: tree_digest(models / name) for name in TINY_MODELS}
    server = _start(servers, models)
    done = server.stubs.training.UploadDataset(iter([
        tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="complete")),
        tpb.UploadDatasetRequest(chunk=LM_TEXT.encode())]), timeout=20)
    uploads = models / ".uploads"
    complete = tree_digest(uploads)

    sent, release = threading.Event(), queue.Queue()

    def parts():
        yield tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="partial"))
        for _ in range(20):
            yield tpb.UploadDatasetRequest(chunk=b"x" * 4096)
        sent.set()
        release.get()  # hold the stream open until the server is dead

    call = server.stubs.training.UploadDataset.future(parts(), timeout=60)
    assert sent.wait(20)
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(".part-") and p.stat().st_size >= 4096 for p in uploads.iterdir()):
        assert time.monotonic() < deadline, "the partial upload never reached the disk"
        time.sleep(0.01)
    server.kill_all()
    release.put(None)
    with pytest.raises(grpc.RpcError):
        call.result()

    server = _start(servers, models)
    assert not [p.name for p in uploads.iterdir() if p.name.startswith(".part-")]
    assert tree_digest(uploads) == complete  # only the complete upload and its sidecar
    _assert_models_intact(server, models, digests)
    events = [r.event for r in server.stubs.training.Train(tpb.TrainRequest(
        model="from-upload", task=pb.TASK_LANGUAGE_MODEL, spec=TINY,
        training=pb.TrainingSettings(max_steps=3, batch_size=2, seq_len=8),
        dataset=tpb.DatasetSource(dataset_id=done.dataset_id)), timeout=120)]
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1]


def test_kill9_during_the_first_checkpoint_save_still_resumes(tmp_path, servers):
    """A checkpoint cut short leaves only a temp dir: the job resumes (restarting cleanly), not FAILED."""
    models = tmp_path / "models"
    server = _start(servers, models)
    big = pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=512, embedding_dim=64)
    call = server.stubs.training.Train(_train_request("ckpt", big, steps=3, checkpoint_every=1), timeout=120)
    job_id = next(call).event.job_id
    ckpt = models / ".jobs" / job_id / "ckpt"
    deadline = time.monotonic() + 60
    while not (ckpt.is_dir() and any(p.name.startswith(".latest.tmp-") for p in ckpt.iterdir())):
        assert time.monotonic() < deadline and server.proc.poll() is None, "never saw the checkpoint save"
        time.sleep(0.001)
    server.kill_all()
    assert not (ckpt / "latest").exists(), "killed too late: the first checkpoint was already complete"

    server = _start(servers, models)
    job = server.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_INTERRUPTED
    events = _resume_to_the_end(server, job_id)
    assert "restarting (no checkpoint was written)" in " ".join(e.message for e in events)
    assert not ckpt.exists() or not [p.name for p in ckpt.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_random_kill9s_during_mixed_work_never_leave_a_broken_model(tmp_path, servers):
    """Eight rounds: train (replacing `lm` or a new model) and upload, SIGKILL everything at a random moment,
    restart: every listed model loads and predicts, untouched models are byte-identical, nothing is partial,
    and no job is left QUEUED or RUNNING."""
    import numpy as np

    rng = np.random.default_rng(7)
    models = tmp_path / "models"
    save_tiny_models(models)
    untouched = {name: tree_digest(models / name) for name in ("clf", "fc")}
    for round_ in range(8):
        server = _start(servers, models)
        name = "lm" if round_ % 2 else f"new{round_}"
        spec = pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=int(rng.integers(64, 600)), embedding_dim=32)
        call = server.stubs.training.Train(_train_request(name, spec, steps=int(rng.integers(1, 40)),
                                                          checkpoint_every=int(rng.integers(1, 5)),
                                                          overwrite=True), timeout=120)
        next(call)
        upload = server.stubs.training.UploadDataset.future(iter(
            [tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="u"))]
            + [tpb.UploadDatasetRequest(chunk=bytes([round_]) * 4096) for _ in range(50)]), timeout=60)
        time.sleep(float(rng.uniform(0.0, 4.0)))
        server.kill_all()
        call.cancel()
        upload.cancel()

        server = _start(servers, models)
        for model, digest in untouched.items():
            assert tree_digest(models / model) == digest
        listed = [m.name for m in server.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models]
        assert {"clf", "fc", "lm"} <= set(listed)
        for model in listed:
            server.stubs.models.GetModel(mpb.GetModelRequest(model=model), timeout=20)
            if model not in untouched:
                request = ipb.PredictRequest(model=model, inputs=[pb.SequenceInput(text="the")])
                assert server.stubs.inference.Predict(request, timeout=20).outputs[0].length == 3
        assert not [p.name for p in models.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
        assert not [p.name for p in (models / ".uploads").iterdir() if p.name.startswith(".part-")]
        jobs = server.stubs.training.ListJobs(tpb.ListJobsRequest(), timeout=20).jobs
        assert not [j for j in jobs if j.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)]
        server.kill_all()
