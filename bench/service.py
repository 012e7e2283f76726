"""Service overhead: `python -m bench.service [--tokens N] [--repeats R] [--threads T] [--quick] [--json]`.

Saves an untrained character LSTM (default 2 layers, hidden 512, embedding 64; `<eos>` suppressed so greedy
streams run to their length) into a temporary model directory, starts `python -m server` on 127.0.0.1 with
`--blas-threads T`, pins this process's BLAS to the same T threads, and measures, alternating between them
(the order flips every repeat; medians over repeats):
  - server: one StreamGenerate stream of N greedy tokens; per-token time = mean gap between consecutive
    tokens as the client receives them ((last - first) / (N - 1): the first token, which includes the
    prompt, is not a gap), and the median gap (smaller: the server runs ahead and tokens arrive in bursts);
  - engine: the same model loaded in this process, `Model.generate` with the same settings (the code path
    the server's batching scheduler runs for a stream: `GenerationRequest` + `StepPlan`, the server's policy),
    mean and median gap between consecutive records;
  - step: the bare per-token work (one `StepPlan` step of one row + `generate.choose`), a lower bound.
Overhead = (server - engine) / engine mean gap per token; target < 25%. Also the time to first token of a
200-character prompt and Predict latency p50/p99 with 1, 8 and 32 concurrent clients (bench.load's load
generator: one 32-character text per call, back to back), each over the bare batch-1 forward of that text.
All of it twice in one run: a server with --deterministic off (the default), then one with it on (Predict at
1 client only), the engine contenders in the same mode.
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
LONG_PROMPT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
               "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
               "season of Light, it was")[:200]  # past PROMPT_STEPS: one forward pass


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


def engine_stream(model, tokens: int, deterministic: bool = False) -> list[float]:
    """Times at which `Model.generate` yields each token (same settings as `server_stream`)."""
    from rnn_engine.config import GenerationConfig
    from rnn_engine.generation import GeneratedToken

    cfg = GenerationConfig(max_new_tokens=tokens, temperature=0.0)
    return [time.perf_counter() for r in model.generate(PROMPT, cfg, deterministic=deterministic)
            if isinstance(r, GeneratedToken)]


def step_stream(model, tokens: int, deterministic: bool = False) -> list[float]:
    """Times of the bare per-token work: one `StepPlan` step of one row (the mode's kernel) and `choose`."""
    import numpy as np

    from rnn_engine.config import GenerationConfig
    from rnn_engine.generation import StepPlan, choose
    from rnn_engine.models.base import zero_state

    cfg, rng = GenerationConfig(temperature=0.0), np.random.default_rng(0)
    plan = StepPlan(model, deterministic)
    state, ids, history, stamps = zero_state(model.net.rnn, 1), np.array([2]), [], []
    for _ in range(tokens):
        logits, (state,) = plan.run_streams(ids, [state])
        ids[0] = choose(logits[0], cfg, history, rng)
        history.append(int(ids[0]))
        stamps.append(time.perf_counter())
    return stamps


def bare_forward_ms(model, text: str, repeats: int = 21) -> float:
    """Median time of the bare batch-1 forward pass of `text` (the network's logits, no softmax)."""
    import numpy as np

    from rnn_engine.backend import no_grad
    from rnn_engine.tokenizers import BOS_ID

    ids = np.array([[BOS_ID] + model.tokenizer.encode(text)])
    times = []
    with no_grad():
        model.net.eval()
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.net.forward(ids)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def time_to_first_token_ms(address: str, prompt: str, repeats: int) -> float:
    """Median time from sending a StreamGenerate call to receiving its first token."""
    from rnn.v1 import inference_service_pb2 as ipb
    from rnn.v1 import inference_service_pb2_grpc as ipb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = ipb_grpc.InferenceServiceStub(channel)
        request = ipb.StreamGenerateRequest(model=MODEL, prompt=prompt, max_new_tokens=2, temperature=0.0)
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            replies = stub.StreamGenerate(request, timeout=600)
            next(iter(replies))
            times.append(time.perf_counter() - t0)
            replies.cancel()
    return statistics.median(times[1:]) * 1e3


def measure_streams(address: str, model, tokens: int, repeats: int, deterministic: bool = False
                    ) -> dict[str, dict]:
    """Per contender: median over repeats of the median token gap and of the mean gap (ms)."""
    from rnn.v1 import inference_service_pb2_grpc as ipb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = ipb_grpc.InferenceServiceStub(channel)
        runs = {"server": lambda: server_stream(stub, tokens),
                "engine": lambda: engine_stream(model, tokens, deterministic),
                "step": lambda: step_stream(model, tokens, deterministic)}
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


def run(tokens: int, repeats: int, threads: int, hidden: int, layers: int, predict_seconds: float,
        modes: tuple[bool, ...] = (False, True), process: str | None = None) -> dict:
    """Start a server per mode (--deterministic off, on), measure (see the module docstring), stop it.
    `process`: "on" / "off" sets the servers' --generation-process (None: the server's default)."""
    from rnn_engine.checkpoint import load_model

    reports = {}
    with tempfile.TemporaryDirectory(prefix="rnn-service-bench-") as tmp:
        model_dir = make_model_dir(Path(tmp), hidden, layers)
        model = load_model(model_dir / MODEL)
        for deterministic in modes:
            flags = ("--blas-threads", str(threads)) + (("--deterministic",) if deterministic else ())
            env = None if process is None else {"RNN_GENERATION_PROCESS": "1" if process == "on" else "0"}
            with pinned_threads(threads), load.server(model_dir, True, flags, env) as (addr, _):
                load.warm_up(addr)
                streams = measure_streams(addr, model, tokens, repeats, deterministic)
                ttft = time_to_first_token_ms(addr, LONG_PROMPT, repeats)
                clients = PREDICT_CLIENTS if deterministic == modes[0] else PREDICT_CLIENTS[:1]
                predict = [asyncio.run(load.load(addr, "predict", n, predict_seconds)) for n in clients]
                forward_32, forward_200 = bare_forward_ms(model, load.PREDICT_TEXT), bare_forward_ms(
                    model, LONG_PROMPT)
            reports["on" if deterministic else "off"] = {
                "streams": streams, "overhead": overhead(streams), "predict": predict, "ttft_200_ms": ttft,
                "forward_32_ms": forward_32, "forward_200_ms": forward_200,
                "ratios": {"stream_token_p50_over_step":
                           streams["server"]["token_ms"] / streams["step"]["token_ms"],
                           "ttft_200_over_forward": ttft / forward_200,
                           "predict_1_p50_over_forward": predict[0]["latency_p50_ms"] / forward_32}}
        info = machine_info(threads)
    return {"machine": info, "model": f"char LSTM, {layers} layers, hidden {hidden}, embedding 64, untrained",
            "tokens": tokens, "repeats": repeats, "predict_seconds": predict_seconds, "modes": reports,
            "generation_process": process or "server default"}


def table(report: dict) -> str:
    return "\n\n".join(f"--deterministic {mode}\n" + _mode_table(report, r)
                       for mode, r in report["modes"].items())


def _mode_table(report: dict, mode: dict) -> str:
    s, o = mode["streams"], mode["overhead"]
    r = mode["ratios"]
    rows = [{"path": name, **s[name]} for name in ("server", "engine", "step")]
    columns = [("path", "per-token path", "s"), ("token_ms", "median gap ms", ".3f"),
               ("mean_token_ms", "mean gap ms", ".3f")]
    out = [f"{report['model']}; {report['tokens']} greedy tokens per stream, medians of {report['repeats']} "
           "repeats", format_table(rows, columns),
           f"overhead (server - engine) / engine, mean gaps: {o['value']:+.1%} (median gaps "
           f"{o['from_median_gaps']:+.1%}); target < {o['target']:.0%}: "
           f"{'met' if o['met'] else 'NOT met'}", "",
           f"server token p50 / bare step: {r['stream_token_p50_over_step']:.2f} (target <= 2.0); "
           f"TTFT of a 200-character prompt {mode['ttft_200_ms']:.2f} ms / its bare forward "
           f"{mode['forward_200_ms']:.2f} ms = {r['ttft_200_over_forward']:.2f}; Predict 1 client p50 / bare "
           f"forward of the text {mode['forward_32_ms']:.2f} ms = {r['predict_1_p50_over_forward']:.2f} "
           "(targets <= 2.0)", "",
           f"Predict (one 32-character text per call, {report['predict_seconds']:g} s per level)",
           format_table(mode["predict"], [("clients", "clients", "d"), ("calls_per_s", "calls/s", ".1f"),
                                            ("latency_p50_ms", "p50 ms", ".2f"),
                                            ("latency_p99_ms", "p99 ms", ".2f")])]
    errors = sorted({e for p in mode["predict"] for e in p["errors"]})
    return "\n".join(out + ([f"Predict errors: {', '.join(errors)}"] if errors else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.split("\n")[0])
    add_common_args(parser, default_repeats=7)
    parser.set_defaults(threads=1)  # the server's default --blas-threads
    parser.add_argument("--tokens", type=int, default=300, help="greedy tokens per stream")
    parser.add_argument("--hidden", type=int, default=512, help="hidden size of the LSTM")
    parser.add_argument("--layers", type=int, default=2, help="LSTM layers")
    parser.add_argument("--predict-seconds", type=float, default=5.0, help="Predict load per client level")
    parser.add_argument("--generation-process", choices=("on", "off"), default=None,
                        help="the servers' --generation-process (default: the server's default)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.tokens = 1, min(args.tokens, 50)
        args.predict_seconds = min(args.predict_seconds, 1.0)
    if not (1 <= args.repeats <= 100 and 3 <= args.tokens <= 4096 and 1 <= args.hidden <= 4096
            and 1 <= args.layers <= 8 and 0.2 <= args.predict_seconds <= 600 and 1 <= args.threads <= 256):
        parser.error("expected --repeats in [1, 100], --tokens in [3, 4096], --hidden in [1, 4096], "
                     "--layers in [1, 8], --predict-seconds in [0.2, 600], --threads in [1, 256]")
    report = run(args.tokens, args.repeats, args.threads, args.hidden, args.layers, args.predict_seconds,
                 process=args.generation_process)
    with contextlib.suppress(BrokenPipeError):
        emit(report, table(report), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
