"""--generation-process: the batch stepped in a child process. Lifecycle (a killed child, a killed server, a
swapped model), tokens through the real server; the scheduler contract itself is test_batching.py's
(parametrized over both schedulers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from rnn.v1 import inference_service_pb2 as ipb
from rnn_engine.checkpoint import save_model
from rnn_engine.config import GenerationConfig, ModelConfig
from rnn_engine.generation.records import GeneratedToken
from rnn_engine.model import Model
from rnn_engine.tokenizers import CharTokenizer
from server.batching import BatchingPool, BatchSettings
from server.batching.engine_process import ProcessGenerationScheduler
from server.errors import ServiceError
from server.store import ModelStore

from .conftest import Stubs

TEXT = "the quick brown fox jumps over the lazy dog. THE END!\n"


def lm(seed: int = 0) -> Model:
    return Model(ModelConfig(hidden_size=40, num_layers=2, embedding_dim=12, seed=seed),
                 tokenizer=CharTokenizer.fit([TEXT]))


def ids_of(records) -> list[int]:
    return [r.id for r in records if isinstance(r, GeneratedToken)]


def read_all(stream, timeout: float = 20.0) -> list:
    """list(stream), or the exception it raised; fails instead of hanging."""
    out: list = []
    done = threading.Event()

    def run():
        try:
            out.extend(stream)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(timeout), "the stream neither ended nor failed"
    return out


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody has reaped yet counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def wait_gone(pid: int, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while alive(pid):
        assert time.monotonic() - start < timeout, f"process {pid} still running after {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize("B", [1, 2, 7])
def test_deterministic_tokens_are_those_of_model_generate_in_a_batch_of_b(B):
    model = lm()
    cfgs = [GenerationConfig(max_new_tokens=30, temperature=t, top_k=k, seed=s)
            for t, k, s in [(1.0, 0, 1), (0.0, 0, 2), (0.7, 5, 3), (1.3, 0, 4), (1.0, 3, 5), (0.5, 0, 6),
                            (2.0, 0, 7)][:B]]
    prompts = ["the ", "", "qu", "dog", "fox j", "T", "lazy"][:B]
    sched = ProcessGenerationScheduler(model, "m", BatchSettings(max_batch_size=8, deterministic=True))
    try:
        streams = [sched.submit(p, c) for p, c in zip(prompts, cfgs, strict=True)]
        together = [read_all(s) for s in streams]
    finally:
        sched.close()
    for p, c, got in zip(prompts, cfgs, together, strict=True):
        assert got == list(model.generate(p, c, deterministic=True))


def test_a_killed_generation_process_ends_its_streams_with_unavailable_and_the_next_call_works():
    model = lm()
    sched = ProcessGenerationScheduler(model, "m", BatchSettings(max_batch_size=4, max_backlog=2))
    try:
        streams = [sched.submit("the", GenerationConfig(max_new_tokens=500, seed=i)) for i in range(3)]
        assert isinstance(next(streams[0]), GeneratedToken)  # running (then paused on its backlog)
        old = sched.pid
        os.kill(old, signal.SIGKILL)
        for stream in streams:
            got = read_all(stream)
            assert isinstance(got[-1], ServiceError), got[-1]
            assert got[-1].code == grpc.StatusCode.UNAVAILABLE
            assert "generation process" in got[-1].message and "killed by signal 9" in got[-1].message
        assert sched.running() == 0
        cfg = GenerationConfig(max_new_tokens=12, seed=1)
        assert ids_of(read_all(sched.submit("dog", cfg))) == ids_of(model.generate("dog", cfg))
        assert sched.pid != old and alive(sched.pid)
    finally:
        sched.close()


def test_a_swapped_model_retires_its_process_once_its_last_stream_has_ended(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", lm(seed=1))
    pool = BatchingPool(BatchSettings(max_backlog=1, process=True), latest=store.get)
    cfg = GenerationConfig(max_new_tokens=30, seed=3)
    in_flight = pool.generate("m", store.get("m"), "the", cfg)
    first = next(in_flight)
    old_pid = in_flight._child.pid
    store.save("m", lm(seed=2))
    fresh = read_all(pool.generate("m", store.get("m"), "the", cfg))
    assert ids_of(fresh) == ids_of(lm(seed=2).generate("the", cfg))
    new_pid = pool.entry("m", store.get("m")).generation.pid
    assert new_pid != old_pid
    time.sleep(0.3)
    assert alive(old_pid)  # the old entry is gone, its stream is not: the old process keeps serving it
    assert ids_of([first, *read_all(in_flight)]) == ids_of(lm(seed=1).generate("the", cfg))
    wait_gone(old_pid)
    assert alive(new_pid)
    pool.forget("m")
    wait_gone(new_pid)


def test_a_sigkilled_server_leaves_no_generation_process_behind(tmp_path):
    save_model(lm(), tmp_path / "models" / "lm")
    env = {**os.environ, "RNN_PORT": "0", "RNN_METRICS_PORT": "0", "RNN_MODEL_DIR": str(tmp_path / "models"),
           "RNN_GENERATION_PROCESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "server"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            record = json.loads(line)
            if record.get("message") == "serving":
                port = record["port"]
                break
        assert port is not None, "the server never logged 'serving'"
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=200, seed=1)
            call = Stubs(channel).inference.StreamGenerate(request, timeout=60)
            assert next(call).HasField("token")  # the generation process runs this stream
            children = [int(pid) for task in Path(f"/proc/{proc.pid}/task").iterdir()
                        for pid in (task / "children").read_text().split()]
            cmdlines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in children}
            generation = [pid for pid, cmd in cmdlines.items()
                          if b"multiprocessing.spawn" in cmd and b"resource_tracker" not in cmd]
            assert len(generation) == 1, cmdlines
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            for pid in children:  # the generation process and multiprocessing's resource tracker
                assert wait_gone(pid, timeout=5.0) < 5.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_streams_through_the_server_get_the_tokens_they_get_alone(make_server, tmp_path):
    model = lm(seed=4)
    save_model(model, tmp_path / "models" / "lm")
    server, stubs = make_server(tmp_path / "models", generation_process=True)
    prompts = ["the ", "", "qu", "dog", "fox", "T"]
    settings = [dict(temperature=1.0, seed=1), dict(temperature=0.0), dict(top_k=5, seed=2),
                dict(top_p=0.9, seed=3), dict(repetition_penalty=1.4, seed=4), dict(seed=8)]
    got: list = [None] * len(prompts)

    def run(i):
        request = ipb.StreamGenerateRequest(model="lm", prompt=prompts[i], max_new_tokens=25, **settings[i])
        got[i] = [r.token.id for r in stubs.inference.StreamGenerate(request, timeout=30)
                  if r.HasField("token")]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p, s, ids in zip(prompts, settings, got, strict=True):
        assert ids == ids_of(model.generate(p, GenerationConfig(max_new_tokens=25, **s)))
    cancelled = stubs.inference.StreamGenerate(ipb.StreamGenerateRequest(
        model="lm", prompt="the", max_new_tokens=2000, seed=1), timeout=30)
    next(cancelled)
    cancelled.cancel()  # the servicer's should_stop becomes a cancel in the child
    scheduler = server.state.batching.entry("lm", server.state.model("lm")).generation
    assert isinstance(scheduler, ProcessGenerationScheduler)
    end = time.monotonic() + 10
    while scheduler.running():
        assert time.monotonic() < end, "the cancelled stream is still running in the generation process"
        time.sleep(0.02)
    text = server.state.metrics.text()
    assert 'rnn_batch_size_count{kind="generate"}' in text


def test_a_message_the_server_cannot_read_ends_the_streams_and_the_child(monkeypatch):
    from server.batching import engine_process

    def broken(metrics, events):
        raise ValueError("unknown metric")

    model = lm()
    sched = ProcessGenerationScheduler(model, "m", BatchSettings(max_batch_size=4))
    try:
        cfg = GenerationConfig(max_new_tokens=10, seed=1)
        assert ids_of(read_all(sched.submit("the", cfg))) == ids_of(model.generate("the", cfg))
        old = sched.pid
        monkeypatch.setattr(engine_process, "_apply", broken)  # the next message with metrics fails
        got = read_all(sched.submit("the", GenerationConfig(max_new_tokens=500, seed=2)))
        assert isinstance(got[-1], ServiceError) and got[-1].code == grpc.StatusCode.UNAVAILABLE
        assert "could not read" in got[-1].message and "unknown metric" in got[-1].message
        wait_gone(old)
        monkeypatch.undo()
        assert ids_of(read_all(sched.submit("the", cfg))) == ids_of(model.generate("the", cfg))
    finally:
        sched.close()
