"""The server starts as the container image starts it, and the image's health probe reports SERVING."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _dockerfile_final_stage() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)
    return [line.strip() for line in stages[-1].splitlines() if line.strip() and not line.startswith("#")]


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile_final_stage():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _exec_form(instruction: str) -> list[str]:
    for line in _dockerfile_final_stage():
        if line.startswith(instruction + " "):
            return json.loads(line[len(instruction) + 1 :].split("CMD", 1)[-1].strip())
    raise AssertionError(f"no {instruction} in the Dockerfile's final stage")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_image_entrypoint_serves_and_its_healthcheck_passes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RNN_")}
    image_env = _image_env()
    port = _free_port()
    # The image's own variables, with the paths and ports of this test machine (and loopback: tests never
    # bind 0.0.0.0). PATH points at this environment's scripts as the image's PATH points at its venv.
    env.update(image_env)
    env.update(
        RNN_HOST="127.0.0.1",
        RNN_PORT=str(port),
        RNN_MODEL_DIR=str(tmp_path / "models"),
        RNN_METRICS_PORT="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    entry = _exec_form("ENTRYPOINT")
    assert entry == ["rnn-server"]
    probe = _exec_form("HEALTHCHECK")
    assert probe[:3] == ["python", "-m", "server.healthcheck"]
    # No fixed address: the probe must follow RNN_PORT (here a free port, not 50051) as the server does.
    assert "--address" not in probe
    probe = [sys.executable, *probe[1:]]
    proc = subprocess.Popen(
        [str(BIN / entry[0])],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
            if result.returncode == 0:
                break
            assert proc.poll() is None, f"server exited early:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, f"health probe never passed: {result.stdout}{result.stderr}"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "SIGTERM must drain and exit cleanly"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # With the server gone the probe must fail, so a dead container is reported unhealthy.
    result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
