"""Soak test: mixed traffic against a local server for a bounded time; errors, server RSS, latencies.

    python -m bench.soak                    # 60 s against a fresh `python -m server` on a temp model dir
    python -m bench.soak --seconds 300 --clients 6 --json

Traffic, from `--clients` threads: Predict (batches of 1-8), StreamGenerate (8-32 tokens), PredictStream
(3 chunks), ListModels, GetModel, in fixed proportions; one more thread trains a small model again and again
(Train, 30 steps, overwrite). Any failed call counts as an error (the target is 0). The server's resident
memory is sampled every second from /proc (start = when traffic starts, end = when it stops).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import grpc
import numpy as np

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import inference_service_pb2_grpc as ipb_grpc
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import model_service_pb2_grpc as mpb_grpc
from rnn.v1 import training_service_pb2 as tpb
from rnn.v1 import training_service_pb2_grpc as tpb_grpc

TEXT = "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. " * 20
MIX = {"predict": 0.35, "generate": 0.2, "predict_stream": 0.15, "list": 0.15, "get": 0.15}
LM = "soak-lm"
SMALL = pb.ModelSpec(cell=pb.CELL_TYPE_LSTM, hidden_size=32, embedding_dim=16)


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start_server(model_dir: str) -> tuple[subprocess.Popen, int]:
    """`python -m server --port 0` on `model_dir`; returns the process and the port it logged."""
    argv = [sys.executable, "-m", "server", "--port", "0", "--metrics-port", "0", "--model-dir", model_dir,
            "--log-level", "INFO", "--max-training-jobs", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("message") == "serving":
            port = record["port"]
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep the pipe drained
    if not port:
        proc.kill()
        raise RuntimeError("the server did not report its port")
    return proc, int(port)


class Soak:
    """The traffic generator: per-operation latencies and errors, collected from every thread."""

    def __init__(self, address: str, seconds: float, clients: int, seed: int, train: bool = True) -> None:
        self.channel = grpc.insecure_channel(address)
        self.inference = ipb_grpc.InferenceServiceStub(self.channel)
        self.models = mpb_grpc.ModelServiceStub(self.channel)
        self.training = tpb_grpc.TrainingServiceStub(self.channel)
        self.seconds, self.clients, self.seed, self.with_training = seconds, clients, seed, train
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_examples: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def train(self, name: str, steps: int) -> None:
        training = pb.TrainingSettings(max_steps=steps, batch_size=8, seq_len=32, seed=1)
        request = tpb.TrainRequest(model=name, task=pb.TASK_LANGUAGE_MODEL, spec=SMALL, training=training,
                                   dataset=tpb.DatasetSource(text=TEXT), overwrite=True)
        last = [r.event for r in self.training.Train(request, timeout=600)][-1]
        if last.state != pb.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"training {name} ended {pb.JobState.Name(last.state)}: {last.message}")

    def _op(self, kind: str, rng: np.random.Generator) -> None:
        if kind == "predict":
            n = int(rng.integers(1, 9))
            inputs = [pb.SequenceInput(text=TEXT[i * 7:i * 7 + int(rng.integers(5, 60))]) for i in range(n)]
            self.inference.Predict(ipb.PredictRequest(model=LM, inputs=inputs, top_k=3), timeout=30)
        elif kind == "generate":
            n = int(rng.integers(8, 33))
            request = ipb.StreamGenerateRequest(model=LM, prompt="the ", max_new_tokens=n, temperature=0.8,
                                                seed=int(rng.integers(1 << 30)))
            for _ in self.inference.StreamGenerate(request, timeout=30):
                pass
        elif kind == "predict_stream":
            chunks = [ipb.PredictStreamRequest(model=LM, sequence_id="s", start=i == 0, end=i == 2,
                                               chunk=pb.SequenceInput(text=TEXT[i * 10:i * 10 + 10]))
                      for i in range(3)]
            for _ in self.inference.PredictStream(iter(chunks), timeout=30):
                pass
        elif kind == "list":
            self.models.ListModels(mpb.ListModelsRequest(), timeout=30)
        else:
            self.models.GetModel(mpb.GetModelRequest(model=LM), timeout=30)

    def _record(self, kind: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - every failure is counted and a few are shown
            with self.lock:
                self.errors[kind] += 1
                if len(self.error_examples) < 5:
                    self.error_examples.append(f"{kind}: {exc!r:.300}")
            return
        with self.lock:
            self.latency[kind].append(time.perf_counter() - t0)

    def _client(self, index: int) -> None:
        rng = np.random.default_rng(self.seed + index)
        kinds, weights = list(MIX), np.array(list(MIX.values()))
        while not self.stop.is_set():
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            self._record(kind, lambda k=kind: self._op(k, rng))

    def _trainer(self) -> None:
        while not self.stop.is_set():
            self._record("train", lambda: self.train("soak-small", 30))

    def run(self, pid: int | None) -> dict:
        """Drive traffic for `seconds`; returns the report (RSS figures when the server pid is known)."""
        threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(self.clients)]
        if self.with_training:
            threads.append(threading.Thread(target=self._trainer, daemon=True))
        rss = [rss_mib(pid)] if pid else []
        t0 = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() - t0 < self.seconds:
            time.sleep(1.0)
            if pid:
                rss.append(rss_mib(pid))
        self.stop.set()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - t0
        return self.report(elapsed, rss)

    def report(self, elapsed: float, rss: list[float]) -> dict:
        ops = {}
        for kind in [*MIX, "train"]:
            lat = sorted(self.latency.get(kind, []))
            ops[kind] = {"calls": len(lat), "errors": self.errors.get(kind, 0),
                         **{f"p{q}_ms": _percentile(lat, q) * 1000 for q in (50, 90, 99)},
                         "max_ms": (lat[-1] * 1000) if lat else math.nan}
        out = {"seconds": round(elapsed, 1), "clients": self.clients, "operations": ops,
               "calls": sum(o["calls"] for o in ops.values()), "errors": sum(self.errors.values()),
               "error_examples": self.error_examples}
        if rss:
            last_quarter = statistics.median(rss[-max(1, len(rss) // 4):])
            out["rss_mib"] = {"start": round(rss[0], 1), "end": round(rss[-1], 1), "peak": round(max(rss), 1),
                              "median_last_quarter": round(last_quarter, 1),
                              "at_quarters": [round(rss[min(len(rss) - 1, len(rss) * q // 4)], 1)
                                              for q in range(5)]}
        return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values), q))


def print_table(report: dict) -> None:
    print(f"soak: {report['seconds']} s, {report['clients']} clients (+ a trainer unless --no-train), "
          f"{report['calls']} calls, "
          f"{report['errors']} errors")
    print(f"{'operation':<15}{'calls':>7}{'errors':>8}"
          f"{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for kind, o in report["operations"].items():
        print(f"{kind:<15}{o['calls']:>7}{o['errors']:>8}{o['p50_ms']:>10.1f}{o['p90_ms']:>10.1f}"
              f"{o['p99_ms']:>10.1f}{o['max_ms']:>10.1f}")
    if "rss_mib" in report:
        r = report["rss_mib"]
        print(f"server RSS MiB: start {r['start']}, end {r['end']}, peak {r['peak']} "
              f"(at 0/25/50/75/100%: {r['at_quarters']})")
    for line in report["error_examples"]:
        print("error:", line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="traffic duration (default 60)")
    parser.add_argument("--clients", type=int, default=4, help="client threads besides the trainer")
    parser.add_argument("--address", help="use a running server (its RSS is read only with --pid)")
    parser.add_argument("--pid", type=int, help="pid of the server given by --address, for RSS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-train", action="store_true", help="leave out the training thread")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if not args.seconds > 0 or args.clients < 1:
        parser.error("--seconds must be > 0 and --clients >= 1")
    proc, tmp = None, None
    if args.address:
        address, pid = args.address, args.pid
    else:
        tmp = tempfile.TemporaryDirectory(prefix="rnn-soak-")
        proc, port = start_server(tmp.name)
        address, pid = f"127.0.0.1:{port}", proc.pid
    try:
        soak = Soak(address, args.seconds, args.clients, args.seed, train=not args.no_train)
        soak.train(LM, 200)  # the model the traffic uses
        report = soak.run(pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
            tmp.cleanup()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_table(report)
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
