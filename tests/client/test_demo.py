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


def test_demo_with_an_address_uses_that_server_instead_of_starting_one(capsys):
    # docker compose runs `python -m client.demo --address server:50051`
    assert demo.main(["--address", "127.0.0.1:1", "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert "step '1. train a character-level LSTM' failed" in err and "$ rnn-server" not in err


@pytest.mark.slow
def test_demo_runs_twice_against_a_running_server(tmp_path):
    # the second run overwrites the first run's model, as on compose's persistent volume
    port = demo.free_port()
    cmd = [sys.executable, "-m", "server", "--port", str(port), "--model-dir", str(tmp_path / "models"),
           "--metrics-port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        try:
            demo._wait_serving(server, f"127.0.0.1:{port}", tmp_path / "none.log", timeout=60)
            for _ in range(2):
                args = ["--address", f"127.0.0.1:{port}", "--steps", "10", "--hidden-size", "16",
                        "--corpus-chars", "5000"]
                result = subprocess.run([sys.executable, "-m", "client.demo", *args],
                                        capture_output=True, text=True, timeout=300)
                assert result.returncode == 0, result.stderr[-3000:]
        finally:
            server.terminate()


@pytest.mark.slow
def test_demo_runs_end_to_end_with_a_small_model(tmp_path):
    result = subprocess.run([sys.executable, "-m", "client.demo", "--steps", "30", "--hidden-size", "32",
                             "--corpus-chars", "20000", "--output-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "demo-char-lstm.onnx").stat().st_size > 0
    assert "onnxruntime after" in result.stderr
