"""The `make run` demo: a failing step exits non-zero with a message; the whole demo runs (slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from client import demo


def test_server_that_exits_at_startup_is_reported_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("rnn-server: port: expected an int in [0, 65535], got 99999999\n")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    proc.wait()
    with pytest.raises(demo.DemoFailed, match="exited with code 3") as info:
        demo._wait_serving(proc, "127.0.0.1:1", log, timeout=10)
    assert "expected an int" in str(info.value)


def test_failed_rnnctl_step_raises_naming_the_step():
    with pytest.raises(demo.DemoFailed, match="step 'show' failed"):
        demo.rnnctl("show", "--address", "127.0.0.1:1", "models", "show", "nothing")


def test_demo_main_returns_non_zero_when_a_step_fails(monkeypatch, capsys):
    def broken(args, workdir):
        raise demo.DemoFailed("step 'x' failed: on purpose")

    monkeypatch.setattr(demo, "run", broken)
    assert demo.main([]) == 1


@pytest.mark.slow
def test_demo_runs_end_to_end_with_a_small_model(tmp_path):
    result = subprocess.run([sys.executable, "-m", "client.demo", "--steps", "30", "--hidden-size", "32",
                             "--corpus-chars", "20000", "--output-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "demo-char-lstm.onnx").stat().st_size > 0
    assert "onnxruntime after" in result.stderr
