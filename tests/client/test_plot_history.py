"""`rnnctl plot` draws from the history GetModel carries, so it works after the model's job record is gone."""

from __future__ import annotations

import json
import shutil

import pytest

from client import RnnClient
from client.errors import NotFound
from server import ServerConfig, create_server

from .conftest import LM_TEXT, TINY
from .test_cli import ok, run


def serve(model_dir):
    server, port = create_server(ServerConfig(port=0, model_dir=model_dir, metrics_port=0))
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def orphan_model(tmp_path) -> tuple[str, str]:
    """(address, job id) of a server restarted on a model directory whose model's job record was deleted."""
    model_dir = tmp_path / "models"
    server, address = serve(model_dir)
    try:
        with RnnClient(address, timeout=60) as client:
            events = list(client.train("orphan", text=LM_TEXT, overwrite=True, **TINY))
            assert events[-1].state == "succeeded", events[-1]
            job_id = client.get_model("orphan").job_id
    finally:
        server.drain(2)
    assert job_id and (model_dir / ".jobs" / job_id).is_dir()
    shutil.rmtree(model_dir / ".jobs" / job_id)
    server, address = serve(model_dir)
    yield address, job_id
    server.drain(2)


def test_plot_of_a_model_whose_job_record_was_deleted(orphan_model, tmp_path):
    address, job_id = orphan_model
    with RnnClient(address, timeout=60) as client:
        with pytest.raises(NotFound):
            list(client.watch_job(job_id))  # the job's events are gone: only the model's history is left
        history = client.get_model("orphan").details["history"]
        assert history and all("train_loss" in row and "step" in row for row in history)
        assert all("history" not in m.details for m in client.list_models())  # pages stay small
    path = tmp_path / "orphan.png"
    out = json.loads(ok(run(address, "plot", "orphan", "-o", str(path), json_mode=True)))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["points"]["train_loss"] == len(history) and out["points"]["validation_loss"] == len(history)
