"""`python -m server` on SIGTERM: health NOT_SERVING, in-flight calls finish, a running job checkpoints and is
reported INTERRUPTED (and resumable) by the next server on the same model directory; exit code 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import grpc

from rnn.v1 import common_pb2 as pb
from rnn.v1 import training_service_pb2 as tpb

from .conftest import MODELS, Stubs


def _port_from_log(proc) -> int:
    for line in proc.stderr:
        record = json.loads(line)
        if record.get("message") == "serving":
            return record["port"]
    raise AssertionError("the server never logged 'serving'")


def test_sigterm_checkpoints_running_jobs_and_exits_cleanly(tmp_path, make_server):
    env = {**os.environ, "RNN_PORT": "0", "RNN_METRICS_PORT": "0", "RNN_MODEL_DIR": str(tmp_path / "m")}
    proc = subprocess.Popen([sys.executable, "-m", "server"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = _port_from_log(proc)
        threading.Thread(
            target=lambda: [None for _ in proc.stderr], daemon=True
        ).start()  # keep the pipe drained
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stubs = Stubs(channel)
        task, spec, dataset = MODELS["lm"]
        training = pb.TrainingSettings(max_steps=2000, batch_size=8, seq_len=32, checkpoint_every=1000)
        call = stubs.training.Train(
            tpb.TrainRequest(model="long", task=task, spec=spec, training=training, dataset=dataset),
            timeout=60,
        )
        job_id = ""
        for reply in call:
            job_id = reply.event.job_id
            if reply.event.step >= 3:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, stubs = make_server(model_dir=tmp_path / "m")
    job = stubs.training.GetJob(tpb.GetJobRequest(job_id=job_id)).job
    assert job.state == pb.JOB_STATE_INTERRUPTED and job.resumable and 3 <= job.step < 2000
    assert (tmp_path / "m" / ".jobs" / job_id / "ckpt" / "latest" / "manifest.json").is_file()
