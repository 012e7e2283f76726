"""The PostgreSQL store's start-up checks, migrations, atomic model versions and uploads across replicas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
import psycopg
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from server.pg import SCHEMA_VERSION, Database, StoreError
from tests.crash.proc import REPO
from tests.security.helpers import LM_TEXT

from .test_scale_out import SERVE, TINY, predict


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RNN_STORE", None)
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def test_an_unreachable_or_bad_store_refuses_to_start_naming_the_setting(postgres, tmp_path):
    dead = f"postgresql://rnn@127.0.0.1:{postgres.port}/no_such_database"
    out = _run("-m", "server", "--port", "0", "--metrics-port", "0", "--model-dir", str(tmp_path),
               "--store", dead)
    assert out.returncode == 2 and "--store / RNN_STORE" in out.stderr and "no_such_database" in out.stderr
    out = _run("-m", "server", "--port", "0", "--metrics-port", "0", "--model-dir", str(tmp_path),
               "--store", "mysql://x")
    assert out.returncode == 2 and "store (--store / RNN_STORE)" in out.stderr
    out = _run("-m", "server.jobs.worker")
    assert out.returncode == 2 and "RNN_STORE" in out.stderr
    out = _run("-m", "server.jobs.worker", "--store", dead)
    assert out.returncode == 2 and "RNN_STORE" in out.stderr and "no_such_database" in out.stderr


def test_migrations_apply_once_and_a_newer_schema_is_refused(pg_url):
    Database(pg_url).close()
    Database(pg_url).close()  # a second start applies nothing
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM rnn_schema_migrations").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("INSERT INTO rnn_schema_migrations (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError) as err:
        Database(pg_url)
    assert f"schema version {SCHEMA_VERSION + 1}, newer" in str(err.value) and "RNN_STORE" in str(err.value)


SAVER = """
import sys, time
from server.pg import Database
from server.pgmodels import insert_model
db = Database(sys.argv[1])
with db.transaction() as cur:
    insert_model(cur, "m", {"manifest.json": b"{}", "weights.npz": b"x" * 1000})
    print("inserted", flush=True)
    time.sleep(60)
"""


def test_kill9_mid_save_leaves_the_complete_model_and_no_partial_one(pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", "--max-training-jobs", "1", "--deterministic")
    training = pb.TrainingSettings(max_steps=3, batch_size=2, seq_len=8)
    events = [r.event for r in a.stubs.training.Train(tpb.TrainRequest(
        model="m", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=training,
        dataset=tpb.DatasetSource(text=LM_TEXT)), timeout=120)]
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED
    before = predict(a.stubs, "m")
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SELECT version FROM rnn_models WHERE name = 'm'").fetchone()[0]
    saver = subprocess.Popen([sys.executable, "-c", SAVER, pg_url], cwd=REPO, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert saver.stdout.readline().strip() == "inserted"  # the new version's files are written, not committed
    os.kill(saver.pid, signal.SIGKILL)
    saver.wait(10)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM rnn_models WHERE name = 'm'").fetchone()[0] == version
        files = dict(conn.execute("SELECT file, length(data) FROM rnn_model_files WHERE name = 'm'"))
    assert "manifest.json" in files and files["manifest.json"] > 2  # the complete old version
    assert predict(a.stubs, "m") == before
    b = procs.server(pg_url, tmp_path / "b", *SERVE)  # a fresh replica loads the old version whole
    assert predict(b.stubs, "m") == before


def test_an_upload_on_a_trains_through_b(pg_url, procs, tmp_path):
    a = procs.server(pg_url, tmp_path / "a", *SERVE)
    b = procs.server(pg_url, tmp_path / "b", "--max-training-jobs", "1", "--deterministic")
    data = LM_TEXT.encode()
    reply = a.stubs.training.UploadDataset(iter([
        tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="lm.txt", format=tpb.DATASET_FORMAT_TEXT,
                                                      size_bytes=len(data))),
        tpb.UploadDatasetRequest(chunk=data),
    ]), timeout=30)
    assert not any(p.is_file() for p in (tmp_path / "a").rglob("*") if ".staging" in p.parts)
    training = pb.TrainingSettings(max_steps=3, batch_size=2, seq_len=8)
    events = [r.event for r in b.stubs.training.Train(tpb.TrainRequest(
        model="up", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=training,
        dataset=tpb.DatasetSource(dataset_id=reply.dataset_id)), timeout=120)]
    assert events[-1].state == pb.JOB_STATE_SUCCEEDED, events[-1]
    assert [m.name for m in a.stubs.models.ListModels(mpb.ListModelsRequest(), timeout=20).models] == ["up"]
    with pytest.raises(grpc.RpcError) as err:
        list(b.stubs.training.Train(tpb.TrainRequest(
            model="up2", task=pb.TASK_LANGUAGE_MODEL, spec=TINY, training=training,
            dataset=tpb.DatasetSource(dataset_id="ds-" + "0" * 24)), timeout=30))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "dataset.dataset_id" in err.value.details()


def test_the_serving_hot_path_does_not_touch_the_database(pg_url, tmp_path):
    """After the first load, PgModelStore.get answers from the cache: no connection is taken."""
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import CharTokenizer
    from server.pg import Listener
    from server.pgmodels import PgModelStore

    db = Database(pg_url)
    listener = Listener(pg_url).start()
    try:
        store = PgModelStore(db, listener, tmp_path)
        other_listener = Listener(pg_url).start()
        other = PgModelStore(db, other_listener, tmp_path / "other")
        tokenizer = CharTokenizer.fit(["ab"])
        other.save("m", Model(ModelConfig(hidden_size=8, embedding_dim=4, seed=0), tokenizer=tokenizer))
        taken = []
        real = db.connect

        def counting():
            taken.append(1)
            return real()

        db.connect = counting
        time.sleep(0.5)  # the save's NOTIFY has reached `store` (a get racing one reads the database again)
        first = store.get("m")
        assert taken  # the first get reads the database
        taken.clear()
        assert all(store.get("m") is first for _ in range(100)) and not taken
        other.save("m", Model(ModelConfig(hidden_size=8, embedding_dim=4, seed=1),
                              tokenizer=CharTokenizer.fit(["ab"])))
        deadline = time.monotonic() + 5
        while store.get("m") is first and time.monotonic() < deadline:  # NOTIFY drops the old version
            time.sleep(0.01)
        assert store.get("m") is not first
    finally:
        listener.close()
        other_listener.close()
        db.close()


def test_both_backends_have_the_one_interface_the_servicers_use():
    import inspect

    from server.jobs import JobBackend, UploadBackend
    from server.jobs.directory import JobManager
    from server.jobs.postgres import PgJobs, PgUploads
    from server.jobs.uploads import UploadStore
    from server.pgmodels import PgModelStore
    from server.store import ModelStore

    def methods(cls):
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    for protocol, backends in ((JobBackend, (JobManager, PgJobs)), (UploadBackend, (UploadStore, PgUploads))):
        for backend in backends:
            for name in methods(protocol):
                want = list(inspect.signature(getattr(protocol, name)).parameters)
                got = list(inspect.signature(getattr(backend, name)).parameters)
                assert got[:len(want)] == want, (backend.__name__, name, got)
    assert {"names", "exists", "get", "save", "delete", "info"} <= methods(PgModelStore) & methods(ModelStore)
