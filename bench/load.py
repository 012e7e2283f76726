"""Serving under load: `python -m bench.load [--seconds S] [--repeats R] [--quick] [--soak [S]] [--json]`.

`--make-model-dir DIR` and `--address ON[,OFF]` run the same phases against servers started by hand, e.g. on
another machine, so the load generator does not share their CPUs (the default runs everything on this one).

Starts two real servers (`python -m server`) as subprocesses on 127.0.0.1, one with batching on and one with
`--no-batching`, over a temporary model directory holding an untrained 2-layer, 512-hidden character LSTM
(random weights: speed does not depend on training). For 1, 8, 32 and 64 concurrent clients it drives, with a
grpc.aio load generator of its own:
  - StreamGenerate streams (64 new tokens each, every stream its own seed), back to back for S seconds:
    aggregate tokens/s, time to first token and per-token latency (gap between a stream's tokens) percentiles;
  - Predict calls (one 32-character text each), back to back for S seconds: calls/s and latency percentiles.
Phases alternate between the two servers and the order of concurrency levels rotates between `--repeats`
repeats; every figure is the median over repeats (the machine may be shared: ratios come from one run).
Then prints the targets as ratios measured in this run (64 streams vs 1, p99 token latency at 64 vs p50 at 1,
Predict at 32 clients batched vs unbatched). `--soak [SECONDS]` (default 30) instead runs 64 streams against
the batching server for that long and reports the server's resident memory at start, end and peak.

Bounds: only 127.0.0.1 unless --address says otherwise, at most 64 streams, every phase ends after its time
budget (streams still open then are cancelled, Predict calls in flight finish), each call has a deadline, and
the server processes are stopped at the end (killed if they do not stop within 15 s). BLAS runs one thread per
server (OPENBLAS_NUM_THREADS=1 etc.): with concurrent requests, threaded BLAS only fights the request threads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import grpc

HOST = "127.0.0.1"
CONCURRENCY = (1, 8, 32, 64)
NEW_TOKENS = 64
PREDICT_TEXT = "To be, or not to be, that is the"  # 32 characters
BLAS_ENV = {k: "1" for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


# ---------------------------------------------------------------------------------------------- server
def make_model_dir(root: Path) -> Path:
    """A model directory with "lm": untrained 2-layer, 512-hidden char LSTM over printable ASCII."""
    from rnn_engine.checkpoint import save_model
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import CharTokenizer

    model = Model(ModelConfig(hidden_size=512, num_layers=2, embedding_dim=64, seed=0),
                  tokenizer=CharTokenizer.fit([string.printable]))
    save_model(model, root / "lm")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> dict[str, int]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, KiB (Linux /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1])
    return out


@contextmanager
def server(model_dir: Path, batching: bool, extra: tuple[str, ...] = (), env: dict | None = None):
    """A server subprocess on 127.0.0.1 (yields (address, pid)); stopped (SIGTERM, then SIGKILL) on exit.
    `extra`: more server flags; `env`: more environment variables."""
    port = free_port()
    cmd = [sys.executable, "-m", "server", "--host", HOST, "--port", str(port), "--model-dir", str(model_dir),
           "--metrics-port", "0", "--max-concurrent-streams", "96", "--log-level", "WARNING",
           "--batching" if batching else "--no-batching", *extra]
    env = {**os.environ, **BLAS_ENV, **(env or {})}
    proc = subprocess.Popen(cmd, env=env, cwd=Path(__file__).resolve().parent.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        address = f"{HOST}:{port}"
        wait_serving(address, proc)
        yield address, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_serving(address: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    end = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
    raise RuntimeError(f"server at {address} not serving after {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------- load
def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def _stream_worker(stub, i: int, stop_at: float, out: dict) -> None:
    from rnn.v1 import inference_service_pb2 as ipb

    n = 0
    while time.perf_counter() < stop_at and n < 10_000:
        n += 1
        request = ipb.StreamGenerateRequest(model="lm", prompt="The ", max_new_tokens=NEW_TOKENS,
                                            seed=1000 * i + n, temperature=1.0)
        start = last = time.perf_counter()
        call = stub.StreamGenerate(request, timeout=max(1.0, stop_at - start + 30))
        try:
            async for reply in call:
                now = time.perf_counter()
                if now > stop_at:
                    call.cancel()
                    return
                if reply.HasField("token"):
                    out["tokens"] += 1
                    (out["gaps"] if last != start else out["ttft"]).append(now - last)
                    last = now
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                out["errors"].append(exc.code().name)
                return


async def _predict_worker(stub, stop_at: float, out: dict, warm_up: bool = False) -> None:
    from rnn.v1 import common_pb2 as pb
    from rnn.v1 import inference_service_pb2 as ipb

    request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text=PREDICT_TEXT)])
    n = 0
    while (warm_up and n == 0) or (time.perf_counter() < stop_at and n < 100_000):
        n += 1
        start = time.perf_counter()
        try:
            await stub.Predict(request, timeout=60)
        except grpc.aio.AioRpcError as exc:
            out["errors"].append(exc.code().name)
            return
        end = time.perf_counter()
        if end <= stop_at:
            out["calls"] += 1
            out["latency"].append(end - start)


async def load(address: str, kind: str, clients: int, seconds: float) -> dict:
    """Run `clients` concurrent workers of `kind` ("generate" | "predict") for `seconds`; summary dict."""
    from rnn.v1 import inference_service_pb2_grpc as ipb_grpc

    out = {"tokens": 0, "calls": 0, "gaps": [], "ttft": [], "latency": [], "errors": []}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ipb_grpc.InferenceServiceStub(channel)
        await asyncio.wait_for(channel.channel_ready(), timeout=30)  # connecting is not part of the phase
        if kind == "predict":  # one untimed call first: the first call's set-up is not a Predict's cost
            await _predict_worker(stub, 0.0, {"calls": 0, "latency": [], "errors": []}, warm_up=True)
        start = time.perf_counter()
        stop_at = start + seconds
        if kind == "generate":
            workers = [_stream_worker(stub, i, stop_at, out) for i in range(clients)]
        else:
            workers = [_predict_worker(stub, stop_at, out) for _ in range(clients)]
        await asyncio.wait_for(asyncio.gather(*workers), timeout=seconds + 90)
    ms = 1000.0
    if kind == "generate":
        return {"clients": clients, "tokens_per_s": out["tokens"] / seconds,
                "ttft_p50_ms": pct(out["ttft"], 50) * ms, "ttft_p99_ms": pct(out["ttft"], 99) * ms,
                "token_p50_ms": pct(out["gaps"], 50) * ms, "token_p99_ms": pct(out["gaps"], 99) * ms,
                "errors": sorted(set(out["errors"]))}
    return {"clients": clients, "calls_per_s": out["calls"] / seconds,
            "latency_p50_ms": pct(out["latency"], 50) * ms, "latency_p99_ms": pct(out["latency"], 99) * ms,
            "errors": sorted(set(out["errors"]))}


def warm_up(address: str) -> None:
    """One StreamGenerate and one Predict to completion: model load, batching probe, first-call costs."""
    from rnn.v1 import common_pb2 as pb
    from rnn.v1 import inference_service_pb2 as ipb
    from rnn.v1 import inference_service_pb2_grpc as ipb_grpc

    with grpc.insecure_channel(address) as channel:
        stub = ipb_grpc.InferenceServiceStub(channel)
        list(stub.StreamGenerate(ipb.StreamGenerateRequest(model="lm", prompt="The ", max_new_tokens=4),
                                 timeout=300))
        request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text=PREDICT_TEXT)])
        stub.Predict(request, timeout=300)


def _median_summary(runs: list[dict]) -> dict:
    """Per metric, the median over repeats (errors: their union)."""
    out = {}
    for key, value in runs[0].items():
        if key == "errors":
            out[key] = sorted({e for r in runs for e in r[key]})
        elif key == "clients":
            out[key] = value
        else:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def run_both(model_dir: Path, seconds: float, levels: tuple[int, ...], repeats: int,
             process: str = "off", extra: tuple[str, ...] = ()) -> dict:
    """Both servers run side by side; phases alternate between them and the concurrency order rotates
    between repeats, so that the other jobs on the machine weigh on every contender alike. T64 is timed
    right before and right after each 64-stream phase of the batching server (`t64_samples_ms`).
    `process`: the batching server's generation worker in-process ("off"), in a child process ("on",
    --generation-process), or both side by side ("both": a third server, "batching_on_process").
    `extra`: more flags for every server."""
    mode = {"off": {"RNN_GENERATION_PROCESS": "0"}, "on": {"RNN_GENERATION_PROCESS": "1"}}
    with contextlib.ExitStack() as stack:
        addresses = {}
        if process in ("off", "both"):
            addresses["batching_on"] = stack.enter_context(server(model_dir, True, extra, mode["off"]))[0]
        if process in ("on", "both"):
            key = "batching_on_process" if process == "both" else "batching_on"
            addresses[key] = stack.enter_context(server(model_dir, True, extra, mode["on"]))[0]
        addresses["batching_off"] = stack.enter_context(server(model_dir, False, extra))[0]
        return run_phases(addresses, seconds, levels, repeats,
                          t64=lambda: bare_step_64_ms(model_dir, repeats=15))


def run_phases(addresses: dict[str, str], seconds: float, levels: tuple[int, ...], repeats: int,
               t64: Callable[[], float] | None = None) -> dict:
    """The phases against running servers ({"batching_on": address, "batching_off": address}, either may be
    missing), alternating between them as `run_both` describes; medians per mode, kind and level. `t64`:
    timed before and after each 64-stream phase of "batching_on" (the machine's load changes by the
    second: T64 is taken next to the phase it is compared with)."""
    runs: dict = {mode: {kind: {n: [] for n in levels} for kind in ("generate", "predict")}
                  for mode in addresses}
    t64_samples: list[float] = []
    for address in addresses.values():
        warm_up(address)
    for rep in range(repeats):
        order = levels[rep % len(levels):] + levels[: rep % len(levels)]
        modes = list(addresses.items())[:: 1 if rep % 2 == 0 else -1]
        for n in order:
            for kind in ("generate", "predict"):
                for mode, address in modes:
                    timed = t64 is not None and mode.startswith("batching_on") and kind == "generate" \
                        and n == 64
                    if timed:
                        t64_samples.append(t64())
                    runs[mode][kind][n].append(asyncio.run(load(address, kind, n, seconds)))
                    if timed:
                        t64_samples.append(t64())
    out: dict = {mode: {kind: [_median_summary(runs[mode][kind][n]) for n in levels] for kind in runs[mode]}
                 for mode in runs}
    if t64_samples:
        out["t64_samples_ms"] = t64_samples
    return out


def soak(model_dir: Path, seconds: float) -> dict:
    with server(model_dir, True) as (address, pid):
        warm_up(address)
        asyncio.run(load(address, "generate", 64, 2.0))
        before = rss_kib(pid)
        samples = []

        async def sample():
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                samples.append(rss_kib(pid)["VmRSS"])
                await asyncio.sleep(1.0)

        async def both():
            return (await asyncio.gather(load(address, "generate", 64, seconds), sample()))[0]

        result = asyncio.run(both())
        after = rss_kib(pid)
    return {"seconds": seconds, "streams": 64, "tokens_per_s": result["tokens_per_s"],
            "rss_start_mib": before["VmRSS"] / 1024, "rss_end_mib": after["VmRSS"] / 1024,
            "rss_max_sampled_mib": max(samples, default=0) / 1024, "peak_hwm_mib": after["VmHWM"] / 1024,
            "errors": result["errors"]}


# ---------------------------------------------------------------------------------------------- report
def _div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def bare_step_64_ms(model_dir: Path, rows: int = 64, repeats: int = 30, temperature: float = 1.0) -> float:
    """T64: median time of one bare `rows`-row step (StepPlan's default policy) plus its sampling with the
    load's settings (temperature 1.0, a random generator per row; 0.0: greedy), in this process, 1 BLAS
    thread (the server's default)."""
    import numpy as np

    from bench.common import pinned_threads
    from rnn_engine import no_grad
    from rnn_engine.checkpoint import load_model
    from rnn_engine.config import GenerationConfig
    from rnn_engine.generation import StepPlan, choose_rows
    from rnn_engine.models.base import zero_state

    model = load_model(model_dir / "lm")
    plan = StepPlan(model)
    states, ids = [zero_state(model.net.rnn, 1) for _ in range(rows)], np.arange(rows) % 90 + 4
    cfgs, hist = [GenerationConfig(temperature=temperature)] * rows, [[] for _ in range(rows)]
    rngs = [np.random.default_rng(i) for i in range(rows)]
    times = []
    with pinned_threads(1), no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            logits, states = plan.run_streams(ids, states)
            choose_rows(logits, cfgs, hist, rngs)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def ratios(on: dict, off: dict | None, t64_ms: float | None = None) -> dict:
    g = {r["clients"]: r for r in on["generate"]}
    p_on = {r["clients"]: r for r in on["predict"]}
    p_off = {r["clients"]: r for r in off["predict"]} if off else {}
    out = {}
    if 1 in g and 64 in g:
        out["tokens_per_s_64_over_1"] = (_div(g[64]["tokens_per_s"], g[1]["tokens_per_s"]), 10.0, ">=")
        out["token_p99_at_64_over_p50_at_1"] = (_div(g[64]["token_p99_ms"], g[1]["token_p50_ms"]), 3.0, "<=")
    if 64 in g and t64_ms:  # issue 13: against the bare 64-row step + sampling measured in the same run
        out["tokens_per_s_64_over_64_per_T64"] = (_div(g[64]["tokens_per_s"], 64 / t64_ms * 1e3), 0.6, ">=")
        out["token_p99_at_64_over_T64"] = (_div(g[64]["token_p99_ms"], t64_ms), 2.5, "<=")
    if 32 in p_on and 32 in p_off:
        value = _div(p_on[32]["calls_per_s"], p_off[32]["calls_per_s"])
        out["predict_32_batched_over_unbatched"] = (value, 5.0, ">=")
    return {k: {"value": v, "target": t, "met": v >= t if op == ">=" else v <= t, "op": op}
            for k, (v, t, op) in out.items()}


def print_table(results: dict) -> None:
    m = results.get("machine", {})
    load = {k: "/".join(f"{x:.1f}" for x in m.get(k) or ())
            for k in ("load_average_before", "load_average_after")}
    phases = "" if "soak" in results else \
        f"; phases of {results.get('seconds')} s, medians of {results.get('repeats')} repeats"
    print(f"{results.get('model', '')}; {m.get('cpus')} CPUs, load average (1/5/15 min) before "
          f"{load['load_average_before']}, after {load['load_average_after']}{phases}")
    for mode in ("batching_on", "batching_on_process", "batching_off"):
        if mode not in results:
            continue
        print(f"\n{mode}: StreamGenerate ({NEW_TOKENS} new tokens per call)")
        print(f"{'streams':>8} {'tok/s':>9} {'ttft p50':>9} {'ttft p99':>9} {'tok p50':>8} {'tok p99':>8}"
              "  errors")
        for r in results[mode]["generate"]:
            print(f"{r['clients']:>8} {r['tokens_per_s']:>9.0f} {r['ttft_p50_ms']:>7.1f}ms "
                  f"{r['ttft_p99_ms']:>7.1f}ms {r['token_p50_ms']:>6.1f}ms {r['token_p99_ms']:>6.1f}ms  "
                  f"{','.join(r['errors']) or '-'}")
        print(f"{mode}: Predict (one {len(PREDICT_TEXT)}-character text per call)")
        print(f"{'clients':>8} {'calls/s':>9} {'lat p50':>9} {'lat p99':>9}  errors")
        for r in results[mode]["predict"]:
            print(f"{r['clients']:>8} {r['calls_per_s']:>9.1f} {r['latency_p50_ms']:>7.1f}ms "
                  f"{r['latency_p99_ms']:>7.1f}ms  {','.join(r['errors']) or '-'}")
    if "t64_ms" in results:
        samples = results.get("t64_samples_ms") or []
        around = f", median of {len(samples)} taken around the 64-stream phases" if samples else ""
        print(f"\nT64 (bare 64-row step + its sampling at temperature 1.0, this process): "
              f"{results['t64_ms']:.2f} ms{around}; with greedy sampling "
              f"{results.get('t64_greedy_ms', float('nan')):.2f} ms")
    for key, title in (("ratios", ""), ("ratios_process", ", generation process (batching_on_process)")):
        if key in results:
            print(f"\ntargets (ratios measured in this run{title})")
            for name, r in results[key].items():
                print(f"  {name:<36} {r['value']:7.2f}  target {r['op']} {r['target']:g}  "
                      f"{'met' if r['met'] else 'NOT met'}")
    if "soak" in results:
        s = results["soak"]
        print(f"\nsoak: {s['streams']} streams for {s['seconds']:g} s, {s['tokens_per_s']:.0f} tok/s; "
              f"server RSS start {s['rss_start_mib']:.1f} MiB, end {s['rss_end_mib']:.1f} MiB, max sampled "
              f"{s['rss_max_sampled_mib']:.1f} MiB, peak (VmHWM) {s['peak_hwm_mib']:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each measured phase")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per phase (medians reported)")
    parser.add_argument("--quick", action="store_true", help="one repeat of 1.5-second phases (smoke use)")
    parser.add_argument("--soak", type=float, nargs="?", const=30.0, default=0.0, metavar="SECONDS",
                        help="only run 64 streams this long (default 30) and report server memory")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--address", metavar="ON[,OFF]",
                        help="load servers already running (e.g. on another machine, so the load generator "
                             "does not share their CPUs): ON with batching, OFF (optional) with "
                             "--no-batching, each serving the model of --make-model-dir as 'lm'")
    parser.add_argument("--generation-process", choices=("off", "on", "both"), default="both",
                        help="the batching server's generation worker: in-process, in a child process "
                             "(--generation-process), or both as two servers side by side (default)")
    parser.add_argument("--server-flag", action="append", default=[], metavar="FLAG",
                        help="one more flag for every server started (repeatable, e.g. "
                             "--server-flag=--deterministic)")
    parser.add_argument("--make-model-dir", metavar="DIR", type=Path,
                        help="only write the benchmark's model to DIR/lm (for servers started by hand), exit")
    args = parser.parse_args(argv)
    seconds, repeats = (1.5, 1) if args.quick else (args.seconds, args.repeats)
    if not 0.5 <= seconds <= 600 or not 1 <= repeats <= 20 or not 0 <= args.soak <= 3600:
        parser.error("--seconds must be in [0.5, 600], --repeats in [1, 20] and --soak in [0, 3600]")
    if args.make_model_dir is not None:
        if (args.make_model_dir / "lm").exists():
            parser.error(f"--make-model-dir: {args.make_model_dir / 'lm'} exists; choose an empty directory")
        args.make_model_dir.mkdir(parents=True, exist_ok=True)
        make_model_dir(args.make_model_dir)
        print(f"wrote {args.make_model_dir / 'lm'}; serve it with python -m server --model-dir "
              f"{args.make_model_dir} [--no-batching]")
        return 0
    if args.address is not None:
        if args.soak:
            parser.error("--soak reads the server's memory from /proc: it starts its own server; "
                         "leave out --address")
        parts = [a.strip() for a in args.address.split(",")]
        if not 1 <= len(parts) <= 2 or not all(parts):
            parser.error(f"--address: expected ON or ON,OFF (host:port each), got {args.address!r}")
        addresses = dict(zip(("batching_on", "batching_off"), parts, strict=False))
        try:
            return _report(_remote(addresses, seconds, repeats), args.json)
        except grpc.RpcError as exc:
            parser.exit(1, f"bench.load: {exc.code().name}: {exc.details()}: is a server listening at "
                           f"{args.address}, serving the model of --make-model-dir as 'lm'?\n")
    results = _results(seconds, repeats)
    with tempfile.TemporaryDirectory(prefix="rnn-load-") as tmp:
        model_dir = make_model_dir(Path(tmp))
        if args.soak:
            results["soak"] = soak(model_dir, args.soak)
        else:
            results["generation_process"] = args.generation_process
            results["server_flags"] = args.server_flag
            results.update(run_both(model_dir, seconds, CONCURRENCY, repeats, args.generation_process,
                                    tuple(args.server_flag)))
        with contextlib.suppress(OSError):
            results["machine"]["load_average_after"] = os.getloadavg()
        if not args.soak:
            samples = results.get("t64_samples_ms")
            results["t64_ms"] = statistics.median(samples) if samples else bare_step_64_ms(model_dir)
            results["t64_greedy_ms"] = bare_step_64_ms(model_dir, temperature=0.0)
            results["ratios"] = ratios(results["batching_on"], results["batching_off"], results["t64_ms"])
            if "batching_on_process" in results:
                results["ratios_process"] = ratios(results["batching_on_process"], results["batching_off"],
                                                   results["t64_ms"])
    return _report(results, args.json)


def _results(seconds: float, repeats: int) -> dict:
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                     "model": "char LSTM, 2 layers, hidden 512, embedding 64, untrained", "seconds": seconds,
                     "repeats": repeats}
    with contextlib.suppress(OSError):
        results["machine"]["load_average_before"] = os.getloadavg()
    return results


def _remote(addresses: dict[str, str], seconds: float, repeats: int) -> dict:
    """Results of the phases against servers started elsewhere (`--address`); the machine is the client's."""
    results = _results(seconds, repeats)
    results["addresses"] = addresses
    results.update(run_phases(addresses, seconds, CONCURRENCY, repeats))
    with contextlib.suppress(OSError):
        results["machine"]["load_average_after"] = os.getloadavg()
    results["ratios"] = ratios(results["batching_on"], results.get("batching_off"))
    return results


def _report(results: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
