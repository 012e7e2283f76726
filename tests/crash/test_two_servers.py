"""Two real servers on one model directory (the scale-out layout): neither disturbs the other's work.

The second server's start-up leaves the first's running job RUNNING, refuses to resume it, shows it through
GetJob/ListJobs/WatchJob and cancels it through the shared directory; start-up clean-up leaves another
process's model save and upload in progress alone while still removing abandoned ones.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from tests.security.helpers import LM_TEXT, save_tiny_models

from .proc import REPO, ServerProcess
from .proc import start_server as _start

TINY = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, embedding_dim=4)


def _long_job(server: ServerProcess, name: str) -> tuple[str, queue.Queue]:
    """Start a job that trains far longer than the test; returns its id once it is RUNNING, and its events."""
    training = pb.TrainingSettings(max_steps=200_000, batch_size=2, seq_len=8, checkpoint_every=50)
    request = tpb.TrainRequest(model=name, task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=training,
                               dataset=tpb.DatasetSource(text=LM_TEXT))
    events: queue.Queue = queue.Queue()

    def follow():
        try:
            for reply in server.stubs.training.Train(request, timeout=120):
                events.put(reply.event)
        except grpc.RpcError as exc:
            events.put(exc)
        events.put(None)

    threading.Thread(target=follow, daemon=True).start()
    while True:
        event = events.get(timeout=60)
        assert isinstance(event, tpb.JobEvent), event
        if event.kind == tpb.JOB_EVENT_KIND_PROGRESS and event.step:
            return event.job_id, events


def _final_state(events: queue.Queue, timeout: float = 60) -> int:
    deadline, last = time.monotonic() + timeout, None
    while (event := events.get(timeout=max(0.1, deadline - time.monotonic()))) is not None:
        last = event
    assert isinstance(last, tpb.JobEvent), last
    return last.state


def test_a_second_server_leaves_a_running_job_alone_shows_it_and_cancels_it_through_the_files(
        tmp_path, servers):
    models = tmp_path / "models"
    first = _start(servers, models)
    job_id, events = _long_job(first, "long")

    second = _start(servers, models)
    record = json.loads((models / ".jobs" / job_id / "job.json").read_text())
    assert record["state"] == "RUNNING"
    job = second.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_RUNNING and not job.resumable
    listed = second.stubs.training.ListJobs(tpb.ListJobsRequest(), timeout=20).jobs
    assert [j.job_id for j in listed] == [job_id]

    with pytest.raises(grpc.RpcError) as err:
        list(second.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=20))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "running on another server" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # nor can the new server train the same model meanwhile
        list(second.stubs.training.Train(tpb.TrainRequest(
            model="long", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, overwrite=True,
            training=pb.TrainingSettings(max_steps=3, batch_size=2, seq_len=8),
            dataset=tpb.DatasetSource(text=LM_TEXT)), timeout=20))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

    watched = second.stubs.training.WatchJob(tpb.WatchJobRequest(job_id=job_id), timeout=30)
    replayed = [next(watched).event for _ in range(3)]
    assert [e.sequence for e in replayed] == [0, 1, 2] and {e.job_id for e in replayed} == {job_id}

    second.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=20)
    assert _final_state(events) == pb.JOB_STATE_CANCELLED  # the first server stopped its worker
    tail = [r.event for r in watched]  # the second server's watch ends with the job
    assert tail[-1].state == pb.JOB_STATE_CANCELLED
    job = second.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_CANCELLED and job.resumable

    # now the second server may take the job over, and the first one refuses it in turn
    resumed = second.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=60)
    assert "resuming from the last checkpoint" in next(resumed).event.message
    with pytest.raises(grpc.RpcError) as err:
        list(first.stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=20))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    first.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=20)
    assert [r.event for r in resumed][-1].state == pb.JOB_STATE_CANCELLED


def test_a_restart_after_the_owner_died_still_marks_the_job_interrupted(tmp_path, servers):
    """Killing the first server and its worker frees the lock: the other server records INTERRUPTED."""
    models = tmp_path / "models"
    first = _start(servers, models)
    second = _start(servers, models)
    job_id, _ = _long_job(first, "long")
    first.kill_all()
    job = second.stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=20).job
    assert job.state == pb.JOB_STATE_INTERRUPTED and job.resumable
    assert json.loads((models / ".jobs" / job_id / "job.json").read_text())["state"] == "INTERRUPTED"


HOLDER = """
import sys, time
from pathlib import Path
import numpy as np
from rnn_engine import modelfile
from server.jobs.uploads import _open_part

models, go = Path(sys.argv[1]), Path(sys.argv[2])
part, f = _open_part(models / ".uploads")
f.write(b"half an upload")
real = modelfile._write_weights

def slow_weights(path, arrays):
    real(path, arrays)
    print("saving", flush=True)
    while not go.exists():
        time.sleep(0.01)

modelfile._write_weights = slow_weights
modelfile.save_model_dir(models / "saved", {"w": np.ones(3)}, {"task": "x"})
print("saved", part.exists(), flush=True)
"""


def test_start_up_clean_up_spares_another_processes_save_and_upload_in_progress(tmp_path, servers):
    models = tmp_path / "models"
    save_tiny_models(models, ("lm",))
    (models / ".uploads").mkdir()
    abandoned = [models / ".lm.tmp-0123abcd", models / ".uploads" / ".part-0123abcd"]
    abandoned[0].mkdir()
    abandoned[1].write_bytes(b"left by a crash")
    go = tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(models), str(go)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "saving"
        in_progress = [p for p in models.iterdir() if p.name.startswith(".saved.tmp-")]
        parts = [p for p in (models / ".uploads").iterdir() if p.name.startswith(".part-")]
        assert len(in_progress) == 1 and len(parts) == 2

        server = _start(servers, models)  # its start-up clean-up runs now
        assert in_progress[0].is_dir(), "the other process's save in progress was deleted"
        assert [p.exists() for p in abandoned] == [False, False]
        assert [p for p in parts if p.exists()] == [p for p in parts if p not in abandoned]
        go.touch()
        assert holder.stdout.readline().strip() == "saved True"
        assert holder.wait(20) == 0
    finally:
        holder.kill()
        holder.wait(10)
    assert (models / "saved" / "manifest.json").is_file()
    listed = [m.name for m in server.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models]
    assert "lm" in listed


def test_a_queued_job_cancelled_on_another_server_ends_cancelled_when_its_turn_comes(tmp_path, servers):
    models = tmp_path / "models"
    first = _start(servers, models)  # one training job at a time: the second one waits QUEUED
    running, running_events = _long_job(first, "long")
    queued_call = first.stubs.training.Train(tpb.TrainRequest(
        model="waiting", task=pb.TASK_LANGUAGE_MODEL, spec=TINY,
        training=pb.TrainingSettings(max_steps=3, batch_size=2, seq_len=8),
        dataset=tpb.DatasetSource(text=LM_TEXT)), timeout=60)
    queued = next(queued_call).event
    assert queued.state == pb.JOB_STATE_QUEUED

    second = _start(servers, models)
    reply = second.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=queued.job_id), timeout=20).job
    assert reply.state == pb.JOB_STATE_QUEUED  # as recorded: the first server acts on it
    first.stubs.training.CancelJob(tpb.CancelJobRequest(job_id=running), timeout=20)
    assert _final_state(running_events) == pb.JOB_STATE_CANCELLED
    last = [r.event for r in queued_call][-1]
    assert last.state == pb.JOB_STATE_CANCELLED and "before it started" in last.message
