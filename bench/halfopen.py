"""Half-open calls: `python -m bench.halfopen [--calls N] [--rounds R] [--samples S]`.

One raw HTTP/2 peer (tests/security/rawh2.py, the h2 package) opens N calls (HEADERS only, never a request
message; default 1,000) against an in-process server with token auth; meanwhile an authenticated gRPC
client times Predict and health Check calls. Phases alternate in every round: `idle` (no half-open calls),
`held` (N calls with a valid token, so they pass auth and wait for their message: spread over connections
of max_streams_per_connection streams each), `one-conn` (N calls on one connection, the peer ignoring the
server's SETTINGS: the streams over the limit are refused by HTTP/2) and `no-token` (N calls without
credentials: refused at their HEADERS). Prints median and p99 latency per phase and the ratios to idle.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import inference_service_pb2_grpc as ipb_grpc
from tests.security.helpers import INFER_TOKEN, save_tiny_models, start_server, write_tokens
from tests.security.rawh2 import RawPeer

PREDICT = "/rnn.v1.InferenceService/Predict"
PER_CONNECTION = 100


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def open_half(port: int, n: int, phase: str) -> tuple[list[RawPeer], dict]:
    """The peer's connections with `n` half-open calls, and what became of them after 0.5 s."""
    token = [("authorization", f"Bearer {INFER_TOKEN}")] if phase != "no-token" else []
    peers: list[RawPeer] = []
    if phase == "one-conn":
        peers.append(RawPeer(port, ignore_stream_limit=True))
        sids = [(peers[0], peers[0].open(PREDICT, token)) for _ in range(n)]
    else:
        sids = []
        for i in range(n):
            if i % PER_CONNECTION == 0:
                peers.append(RawPeer(port))
            sids.append((peers[-1], peers[-1].open(PREDICT, token)))
    for _ in range(3):
        for p in peers:
            p.pump(0.3 / len(peers))
    outcome = {"open": 0, "refused_stream": 0}
    for p, sid in sids:
        result = p.streams[sid]
        if result.status() is not None:
            key = f"grpc-status {result.status()}"
        else:
            key = "refused_stream" if result.reset == 7 else ("open" if result.reset is None
                                                               else f"reset {result.reset}")
        outcome[key] = outcome.get(key, 0) + 1
    return peers, outcome


def sample(channel: grpc.Channel, samples: int) -> dict[str, list[float]]:
    meta = [("authorization", f"Bearer {INFER_TOKEN}")]
    predict = ipb_grpc.InferenceServiceStub(channel).Predict
    health = health_pb2_grpc.HealthStub(channel).Check
    request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the cat sat")])
    out: dict[str, list[float]] = {"Predict": [], "Health": []}
    for _ in range(samples):
        for name, call in (("Predict", lambda: predict(request, metadata=meta, timeout=10)),
                           ("Health", lambda: health(health_pb2.HealthCheckRequest(), timeout=10))):
            start = time.perf_counter()
            call()
            out[name].append((time.perf_counter() - start) * 1000)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_tiny_models(root / "models", ("lm",))
        server, port = start_server(root / "models", auth_tokens_file=write_tokens(root / "tokens"),
                                    request_message_timeout=120, max_streams_per_connection=PER_CONNECTION)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        phases = ["idle", "held", "one-conn", "no-token"]
        times = {p: {"Predict": [], "Health": []} for p in phases}
        outcomes = {}
        sample(channel, 10)  # warm up
        try:
            for r in range(args.rounds):
                for phase in phases[r % len(phases):] + phases[: r % len(phases)]:
                    peers, outcome = open_half(port, args.calls, phase) if phase != "idle" else ([], {})
                    outcomes.setdefault(phase, outcome)
                    for name, values in sample(channel, args.samples).items():
                        times[phase][name].extend(values)
                    for p in peers:
                        p.close()
        finally:
            channel.close()
            server.drain(2)
    print(f"{args.calls} half-open calls from one peer; {args.rounds} rounds x {args.samples} calls "
          "per phase")
    for phase in phases:
        line = [f"{phase:9s}"]
        for name in ("Predict", "Health"):
            v = times[phase][name]
            idle = statistics.median(times["idle"][name])
            line.append(f"{name} p50 {statistics.median(v):6.2f} ms  p99 {percentile(v, 0.99):6.2f} ms "
                        f"(p50 x{statistics.median(v) / idle:4.2f} of idle)")
        print("  ".join(line), outcomes.get(phase) or "")


if __name__ == "__main__":
    main()
