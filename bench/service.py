"""Service overhead: `python -m bench.service [--tokens N] [--repeats R] [--threads T] [--quick] [--json]`.

Saves an untrained character LSTM (default 2 layers, hidden 512, embedding 64; `<eos>` suppressed so greedy
streams run to their length) into a temporary model directory, starts `python -m server` on 127.0.0.1 with
`--blas-threads T`, pins this process's BLAS to the same T threads, and measures, alternating between them
(the order flips every repeat; medians over repeats):
  - server: one StreamGenerate stream of N greedy tokens; per-token time = mean gap between consecutive
    tokens as the client receives them ((last - first) / (N - 1): the first token, which includes the
    prompt, is not a gap), and the median gap (smaller: the server runs ahead and tokens arrive in bursts);
  - engine: the same model loaded in this process, `Model.generate` with the same settings (the code path
    the server's batching scheduler runs for a stream: `Sampler` + `batched.step_logits` padded to the same
    rows), mean and median gap between consecutive records;
  - step: the bare per-token work (`step_logits` on one padded row + `generate.choose`), a lower bound.
Overhead = (server - engine) / engine mean gap per token; target < 25%. Then Predict latency p50/p99 with 1, 8
and 32 concurrent clients (bench.load's load generator: one 32-character text per call, back to back).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench import load
from bench.common import Timing, add_common_args, emit, format_table, machine_info, pinned_threads

PROMPT = "The "
MODEL = "lm"  # bench.load's warm-up and Predict workers use this name
TARGET = 0.25
PREDICT_CLIENTS = (1, 8, 32)


def make_model_dir(root: Path, hidden: int, layers: int) -> Path:
    """`root/lm`: an untrained char LSTM over printable ASCII whose `<eos>` logit is pushed down."""
    from rnn_engine.checkpoint import save_model
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import EOS_ID, CharTokenizer

    model = Model(ModelConfig(hidden_size=hidden, num_layers=layers, embedding_dim=64, seed=0),
                  tokenizer=CharTokenizer.fit([string.printable]))
    model.params["head.bias"][EOS_ID] = -50.0  # an untrained model may say <eos>: streams would end early
    save_model(model, root / MODEL)
    return root


def gaps(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def server_stream(stub, tokens: int) -> list[float]:
    """Receive times of the tokens of one greedy StreamGenerate stream."""
    from rnn.v1 import inference_service_pb2 as ipb

    request = ipb.StreamGenerateRequest(model=MODEL, prompt=PROMPT, max_new_tokens=tokens, temperature=0.0)
    stamps = [time.perf_counter() for reply in stub.StreamGenerate(request, timeout=600)
              if reply.HasField("token")]
    if len(stamps) != tokens:
        raise RuntimeError(f"the server streamed {len(stamps)} tokens, expected {tokens}")
    return stamps


def engine_stream(model, tokens: int) -> list[float]:
    """Times at which `Model.generate` yields each token (same settings as `server_stream`)."""
    from rnn_engine.config import GenerationConfig
    from rnn_engine.generate import GeneratedToken

    cfg = GenerationConfig(max_new_tokens=tokens, temperature=0.0)
    return [time.perf_counter() for r in model.generate(PROMPT, cfg) if isinstance(r, GeneratedToken)]


def step_stream(model, tokens: int) -> list[float]:
    """Times of the bare per-token work: one padded `step_logits` row and `choose`, fed back."""
    import numpy as np

    from rnn_engine.batched import GENERATE_ROWS, StepPlan, exact_min_rows, step_logits
    from rnn_engine.config import GenerationConfig
    from rnn_engine.generate import choose
    from rnn_engine.models.base import zero_state

    cfg, rng = GenerationConfig(temperature=0.0), np.random.default_rng(0)
    rows, plan = exact_min_rows(model, GENERATE_ROWS), StepPlan(model)
    state, token, history, stamps = zero_state(model.net.rnn, 1), 2, [], []
    for _ in range(tokens):
        logits, state = step_logits(model, np.array([token]), state, min_rows=rows, plan=plan)
        token = choose(logits[0], cfg, history, rng)
        history.append(token)
        stamps.append(time.perf_counter())
    return stamps


def measure_streams(address: str, model, tokens: int, repeats: int) -> dict[str, dict]:
    """Per contender: median over repeats of the median token gap and of the mean gap (ms)."""
    from rnn.v1 import inference_service_pb2_grpc as ipb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = ipb_grpc.InferenceServiceStub(channel)
        runs = {"server": lambda: server_stream(stub, tokens), "engine": lambda: engine_stream(model, tokens),
                "step": lambda: step_stream(model, tokens)}
        for run in runs.values():  # warm-up: model load, row probe, first-call costs
            run()
        median_gap = {name: Timing(name) for name in runs}
        mean_gap = {name: Timing(name) for name in runs}
        names = list(runs)
        for r in range(repeats):
            for name in names if r % 2 == 0 else names[::-1]:
                time.sleep(0.05)  # let the other side's threads go quiet
                g = gaps(runs[name]())
                median_gap[name].samples.append(statistics.median(g))
                mean_gap[name].samples.append(sum(g) / len(g))
    return {name: {"token_ms": median_gap[name].median * 1e3, "mean_token_ms": mean_gap[name].median * 1e3,
                   "samples_ms": [round(s * 1e3, 4) for s in median_gap[name].samples]} for name in runs}


def overhead(streams: dict[str, dict]) -> dict:
    """From the mean gaps (stream time / tokens): the server may run ahead of the reader by up to its backlog,
    and gRPC then delivers tokens in bursts, so median receive gaps understate its per-token time."""
    server, engine = streams["server"]["mean_token_ms"], streams["engine"]["mean_token_ms"]
    value = (server - engine) / engine
    median = (streams["server"]["token_ms"] - streams["engine"]["token_ms"]) / streams["engine"]["token_ms"]
    return {"value": value, "from_median_gaps": median, "target": TARGET, "met": value < TARGET}


def run(tokens: int, repeats: int, threads: int, hidden: int, layers: int, predict_seconds: float) -> dict:
    """Start the server, measure (see the module docstring), stop it; the report as a dict."""
    from rnn_engine.checkpoint import load_model

    with tempfile.TemporaryDirectory(prefix="rnn-service-bench-") as tmp:
        model_dir = make_model_dir(Path(tmp), hidden, layers)
        model = load_model(model_dir / MODEL)
        flags = ("--blas-threads", str(threads))
        with pinned_threads(threads), load.server(model_dir, True, flags) as (addr, _):
            load.warm_up(addr)
            streams = measure_streams(addr, model, tokens, repeats)
            predict = [asyncio.run(load.load(addr, "predict", n, predict_seconds)) for n in PREDICT_CLIENTS]
        info = machine_info(threads)
    return {"machine": info, "model": f"char LSTM, {layers} layers, hidden {hidden}, embedding 64, untrained",
            "tokens": tokens, "repeats": repeats, "predict_seconds": predict_seconds, "streams": streams,
            "overhead": overhead(streams), "predict": predict}


def table(report: dict) -> str:
    s, o = report["streams"], report["overhead"]
    rows = [{"path": name, **s[name]} for name in ("server", "engine", "step")]
    columns = [("path", "per-token path", "s"), ("token_ms", "median gap ms", ".3f"),
               ("mean_token_ms", "mean gap ms", ".3f")]
    out = [f"{report['model']}; {report['tokens']} greedy tokens per stream, medians of {report['repeats']} "
           "repeats", format_table(rows, columns),
           f"overhead (server - engine) / engine, mean gaps: {o['value']:+.1%} (median gaps "
           f"{o['from_median_gaps']:+.1%}); target < {o['target']:.0%}: "
           f"{'met' if o['met'] else 'NOT met'}", "",
           f"Predict (one 32-character text per call, {report['predict_seconds']:g} s per level)",
           format_table(report["predict"], [("clients", "clients", "d"), ("calls_per_s", "calls/s", ".1f"),
                                            ("latency_p50_ms", "p50 ms", ".2f"),
                                            ("latency_p99_ms", "p99 ms", ".2f")])]
    errors = sorted({e for r in report["predict"] for e in r["errors"]})
    return "\n".join(out + ([f"Predict errors: {', '.join(errors)}"] if errors else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.split("\n")[0])
    add_common_args(parser, default_repeats=7)
    parser.set_defaults(threads=1)  # the server's default --blas-threads
    parser.add_argument("--tokens", type=int, default=300, help="greedy tokens per stream")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size of the LSTM")
    parser.add_argument("--layers", type=int, default=2, help="LSTM layers")
    parser.add_argument("--predict-seconds", type=float, default=5.0, help="Predict load per client level")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.tokens = 1, min(args.tokens, 50)
        args.predict_seconds = min(args.predict_seconds, 1.0)
    if not (1 <= args.repeats <= 100 and 3 <= args.tokens <= 4096 and 1 <= args.hidden <= 4096
            and 1 <= args.layers <= 8 and 0.2 <= args.predict_seconds <= 600 and 1 <= args.threads <= 256):
        parser.error("expected --repeats in [1, 100], --tokens in [3, 4096], --hidden in [1, 4096], "
                     "--layers in [1, 8], --predict-seconds in [0.2, 600], --threads in [1, 256]")
    report = run(args.tokens, args.repeats, args.threads, args.hidden, args.layers, args.predict_seconds)
    with contextlib.suppress(BrokenPipeError):
        emit(report, table(report), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
