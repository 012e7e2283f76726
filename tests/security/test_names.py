"""Model names, dataset ids and job ids can never reach outside the model directory, nor follow a symlink."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb

from .helpers import LM_TEXT, Stubs, save_tiny_models, start_server

BAD_NAMES = ["../x", "a/b", ".hidden", "", "m" * 65, "módel", "a\x00b", "..", ".", "a\\b", "/abs", "x\n",
             " lm", "lm ", "..\\x", "%2e%2e", ".jobs", ".uploads", "a" * 10_000]
TINY = pb.ModelSpec(cell=pb.CELL_TYPE_GRU, hidden_size=8, embedding_dim=4)
FAST = pb.TrainingSettings(max_steps=2, batch_size=2, seq_len=8)


def _by_name(stubs: Stubs, name: str) -> dict[str, object]:
    """One call per RPC that takes a model name."""
    return {
        "Train": lambda: list(stubs.training.Train(tpb.TrainRequest(
            model=name, task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=FAST,
            dataset=tpb.DatasetSource(text=LM_TEXT), overwrite=True), timeout=20)),
        "GetModel": lambda: stubs.models.GetModel(mpb.GetModelRequest(model=name), timeout=20),
        "DeleteModel": lambda: stubs.models.DeleteModel(mpb.DeleteModelRequest(model=name), timeout=20),
        "ExportOnnx": lambda: list(stubs.models.ExportOnnx(mpb.ExportOnnxRequest(model=name), timeout=20)),
        "Predict": lambda: stubs.inference.Predict(ipb.PredictRequest(
            model=name, inputs=[pb.SequenceInput(text="the")]), timeout=20),
        "PredictStream": lambda: list(stubs.inference.PredictStream(iter([ipb.PredictStreamRequest(
            model=name, sequence_id="s", start=True, chunk=pb.SequenceInput(text="the"))]), timeout=20)),
        "StreamGenerate": lambda: list(stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(
            model=name, prompt="t", max_new_tokens=2), timeout=20)),
        "ListJobs": lambda: stubs.training.ListJobs(tpb.ListJobsRequest(model=name), timeout=20),
    }


def _code(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _tree(root: Path) -> dict[str, int]:
    """Every path under `root` (not following symlinks) with its size, to prove nothing changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.lstat().st_size if path.is_file() else -1
    return out


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """(stubs, workspace): the model dir is workspace/models; a valid model sits outside it, symlinked in."""
    workspace = tmp_path_factory.mktemp("names")
    models = workspace / "models"
    save_tiny_models(models, ("lm",))
    save_tiny_models(workspace / "outside", ("lm",))
    os.symlink(workspace / "outside" / "lm", models / "planted")  # a symlinked model dir
    linked = models / "halfway"
    linked.mkdir()
    for f in (workspace / "outside" / "lm").iterdir():  # a real dir whose files are symlinks
        os.symlink(f, linked / f.name)
    (models / ".uploads").mkdir()
    os.symlink(workspace / "outside" / "lm" / "manifest.json", models / ".uploads" / ("ds-" + "a" * 24))
    (models / ".uploads" / ("ds-" + "a" * 24 + ".json")).write_text('{"format": "DATASET_FORMAT_TEXT"}')
    server, port = start_server(models)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel), workspace
    channel.close()
    server.drain(2)


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_a_bad_model_name_is_invalid_for_every_rpc_and_touches_nothing(sandbox, name):
    stubs, workspace = sandbox
    before = _tree(workspace)
    for rpc, call in _by_name(stubs, name).items():
        if rpc == "ListJobs" and name == "":
            continue  # an empty filter means "every model"
        assert _code(call) == grpc.StatusCode.INVALID_ARGUMENT, (rpc, name)
    assert _tree(workspace) == before


def test_the_longest_valid_name_is_accepted(sandbox):
    stubs, _ = sandbox
    assert _code(_by_name(stubs, "m" * 64)["GetModel"]) == grpc.StatusCode.NOT_FOUND


def test_symlinked_models_are_never_listed_loaded_or_deleted(sandbox):
    stubs, workspace = sandbox
    before = _tree(workspace / "outside")
    listed = [m.name for m in stubs.models.ListModels(mpb.ListModelsRequest(), timeout=10).models]
    assert listed == ["lm"]
    for name in ("planted", "halfway"):
        calls = _by_name(stubs, name)
        for rpc in ("GetModel", "Predict", "PredictStream", "StreamGenerate", "ExportOnnx"):
            assert _code(calls[rpc]) in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                         grpc.StatusCode.FAILED_PRECONDITION), (rpc, name)
    assert _code(_by_name(stubs, "planted")["DeleteModel"]) == grpc.StatusCode.NOT_FOUND
    _code(_by_name(stubs, "halfway")["DeleteModel"])  # may remove the links themselves, never their targets
    assert _tree(workspace / "outside") == before
    assert (workspace / "models" / "planted").is_symlink()


def test_training_over_a_symlinked_model_never_writes_through_it(sandbox):
    stubs, workspace = sandbox
    before = _tree(workspace / "outside")
    events = list(stubs.training.Train(tpb.TrainRequest(
        model="planted", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=FAST,
        dataset=tpb.DatasetSource(text=LM_TEXT), overwrite=True), timeout=60))
    assert events[-1].event.state == pb.JOB_STATE_FAILED
    assert "symlink" in events[-1].event.message
    time.sleep(0.2)
    assert _tree(workspace / "outside") == before
    assert (workspace / "models" / "planted").is_symlink()


@pytest.mark.parametrize("dataset_id", ["../../etc/passwd", "ds-../../x", "ds-" + "g" * 24, "/etc/passwd",
                                        "ds-" + "a" * 24 + "/..", "", "ds-" + "A" * 24])
def test_a_malformed_dataset_id_is_invalid(sandbox, dataset_id):
    stubs, _ = sandbox
    code = _code(lambda: list(stubs.training.Train(tpb.TrainRequest(
        model="x", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=FAST,
        dataset=tpb.DatasetSource(dataset_id=dataset_id)), timeout=20)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_symlinked_upload_is_not_found(sandbox):
    stubs, _ = sandbox
    code = _code(lambda: list(stubs.training.Train(tpb.TrainRequest(
        model="x", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=FAST,
        dataset=tpb.DatasetSource(dataset_id="ds-" + "a" * 24)), timeout=20)))
    assert code == grpc.StatusCode.NOT_FOUND


def test_an_upload_name_never_becomes_a_path(sandbox):
    stubs, workspace = sandbox
    parts = [tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="../../escape")),
             tpb.UploadDatasetRequest(chunk=LM_TEXT.encode())]
    reply = stubs.training.UploadDataset(iter(parts), timeout=10)
    assert reply.dataset_id.startswith("ds-")
    assert not (workspace / "escape").exists() and not (workspace.parent / "escape").exists()
    assert (workspace / "models" / ".uploads" / reply.dataset_id).is_file()


@pytest.mark.parametrize("job_id", ["../x", "job-../../x", "job-0123456789ab/..", "", "job-" + "0" * 13])
def test_a_malformed_job_id_is_invalid(sandbox, job_id):
    stubs, _ = sandbox
    for call in (lambda: stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id), timeout=10),
                 lambda: stubs.training.CancelJob(tpb.CancelJobRequest(job_id=job_id), timeout=10),
                 lambda: list(stubs.training.WatchJob(tpb.WatchJobRequest(job_id=job_id), timeout=10)),
                 lambda: list(stubs.training.Train(tpb.TrainRequest(resume_job_id=job_id), timeout=10))):
        assert _code(call) == grpc.StatusCode.INVALID_ARGUMENT
