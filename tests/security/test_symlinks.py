"""No symlink under the model directory is followed: job directories, each kind of job file, upload roots.

A planted link (to a real, valid job outside the model directory) must not be served by GetJob, WatchJob,
CancelJob or ListJobs, and the server must not write `lock`, `events.jsonl`, `job.json` or `cancel` through
it. Checked per kind of entry, with a snapshot of the outside directory before and after.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from rnn.v1 import training_service_pb2 as tpb

try:  # jobs became a package (server/jobs/) on main
    from server.jobs.record import RUNNING, SUCCEEDED, JobFiles, JobRecord
except ImportError:
    from server.jobrecord import RUNNING, SUCCEEDED, JobFiles, JobRecord
from tests.security.helpers import Stubs, start_server

JOB = "job-0123456789ab"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` (links not followed) with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = (Path(dirpath) / name).lstat()
            out[os.path.relpath(Path(dirpath) / name, root)] = (st.st_size, st.st_mtime_ns)
    return out


def write_job(jobs_root: Path, job_id: str = JOB, state: str = SUCCEEDED) -> JobFiles:
    files = JobFiles(jobs_root, job_id)
    files.write_record(JobRecord(job_id=job_id, model="m", task="language_model", model_config={},
                                 train_config={}, dataset={"file": "data.txt", "options": {}}, state=state))
    files.append_event({"kind": "state", "state": state, "sequence": 0})
    (files.dir / "data.txt").write_text("the cat")
    (files.checkpoints / "latest").mkdir(parents=True)
    return files


def calls(stubs: Stubs) -> dict[str, grpc.StatusCode]:
    """The status of every job RPC on JOB, and whether ListJobs lists it (OK) or not (NOT_FOUND)."""
    out = {}
    for name, call in (
        ("GetJob", lambda: stubs.training.GetJob(tpb.GetJobRequest(job_id=JOB), timeout=10)),
        ("CancelJob", lambda: stubs.training.CancelJob(tpb.CancelJobRequest(job_id=JOB), timeout=10)),
        ("WatchJob", lambda: list(stubs.training.WatchJob(tpb.WatchJobRequest(job_id=JOB), timeout=10))),
    ):
        try:
            call()
            out[name] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            out[name] = exc.code()
    listed = [j.job_id for j in stubs.training.ListJobs(tpb.ListJobsRequest(), timeout=10).jobs]
    out["ListJobs"] = grpc.StatusCode.OK if JOB in listed else grpc.StatusCode.NOT_FOUND
    return out


REFUSED = {name: grpc.StatusCode.NOT_FOUND for name in ("GetJob", "CancelJob", "WatchJob", "ListJobs")}


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "models" / ".jobs").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path


def serve(workspace: Path):
    server, port = start_server(workspace / "models")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return server, channel, Stubs(channel)


def test_a_real_job_directory_is_served(workspace):
    write_job(workspace / "models" / ".jobs")
    server, channel, stubs = serve(workspace)
    try:
        assert calls(stubs) == {name: grpc.StatusCode.OK for name in REFUSED}
    finally:
        channel.close()
        server.drain(2)


def assert_refused_and_outside_untouched(workspace: Path) -> None:
    """Every job call against the server over `workspace` is refused, and nothing under workspace/outside
    changed (no lock, cancel, events or record written there)."""
    before = snapshot(workspace / "outside")
    server, channel, stubs = serve(workspace)
    try:
        assert calls(stubs) == REFUSED
    finally:
        channel.close()
        server.drain(2)
    assert snapshot(workspace / "outside") == before


@pytest.mark.parametrize("state", [SUCCEEDED, RUNNING])
def test_a_symlinked_job_directory_is_not_served_nor_written_through(workspace, state):
    outside = write_job(workspace / "outside", state=state)
    os.symlink(outside.dir, workspace / "models" / ".jobs" / JOB)
    assert_refused_and_outside_untouched(workspace)


@pytest.mark.parametrize("entry", ["job.json", "events.jsonl", "lock", "cancel", "ckpt", "ckpt/latest",
                                   "data.txt", "job.json.tmp"])
def test_a_symlinked_entry_in_a_job_directory_is_not_followed(workspace, entry):
    outside = write_job(workspace / "outside", state=RUNNING)
    for name in ("lock", "cancel", "job.json.tmp"):
        (outside.dir / name).touch()
    inside = write_job(workspace / "models" / ".jobs", state=RUNNING)
    target = outside.dir / entry
    link = inside.dir / entry
    if link.is_dir():
        import shutil

        shutil.rmtree(link)
    else:
        link.unlink(missing_ok=True)
    os.symlink(target, link)
    assert_refused_and_outside_untouched(workspace)


@pytest.mark.parametrize("root", [".jobs", ".uploads"])
def test_a_symlinked_jobs_or_uploads_root_stops_the_server_from_starting(workspace, root):
    models = workspace / "models"
    if (models / root).exists():
        (models / root).rmdir()
    (workspace / "outside" / root).mkdir()
    os.symlink(workspace / "outside" / root, models / root)
    with pytest.raises(ValueError, match="symlink"):
        start_server(models)
    assert list((workspace / "outside" / root).iterdir()) == []
