"""Before/after in one process: `python -m bench.engine_ab --base DIR [--threads N] [--repeats R] [--json]`.

DIR holds an older checkout's engine package, copied as `rnn_engine_base` (e.g. `git archive <commit>
rnn_engine | tar -x -C /tmp/old && mv /tmp/old/rnn_engine /tmp/old/rnn_engine_base`). Every case of
`bench.engine` (A, B-gru, B-rnn, C; forward and forward+backward) is timed for that engine, this checkout's
engine and PyTorch, same weights and inputs, alternating (bench/common.py), so that the machine's load hits
all three alike; reported: medians and the per-repeat ratios base/torch, new/torch and new/base.
`--cpu-time` (1 thread) times the calling thread's CPU time instead of wall time.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.common import Timing, add_common_args, alternate, emit, format_table, machine_info, pinned_threads
from bench.engine import CASES, QUICK_CASE, _median_ratio, _sequence_contenders


def _engine_contenders(pkg, case, backward):
    """The engine contender of `bench.engine` built from package `pkg` (module objects swapped in)."""
    saved = {k: v for k, v in sys.modules.items() if k == "rnn_engine" or k.startswith("rnn_engine.")}
    try:
        if pkg != "rnn_engine":
            for k in saved:
                del sys.modules[k]
            sys.modules["rnn_engine"] = importlib.import_module(pkg)
        return _sequence_contenders(case, backward)
    finally:
        for k in [k for k in sys.modules if k == "rnn_engine" or k.startswith("rnn_engine.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def alternate_cpu(contenders, repeats: int) -> dict[str, Timing]:
    """As `bench.common.alternate` (one call per sample, rotating order, one warm-up), but each sample is the
    calling thread's CPU time (`time.thread_time`): with one thread every library computes in the calling
    thread, and time spent descheduled by other jobs on a loaded machine is not counted."""
    names = list(contenders)
    for name in names:
        contenders[name]()
    timings = {name: Timing(name) for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.thread_time()
            contenders[name]()
            timings[name].samples.append(time.thread_time() - start)
    return timings


def run(cases, repeats: int, threads: int, cpu_time: bool = False) -> dict:
    import torch  # noqa: F401  (before pinning)

    rows = []
    with pinned_threads(threads):
        for case in cases:
            for pass_name, backward in (("forward", False), ("forward+backward", True)):
                base = _engine_contenders("rnn_engine_base", case, backward)
                new = _sequence_contenders(case, backward)
                contenders = {"base": base["engine"], "new": new["engine"], "torch": new["torch"]}
                t = alternate_cpu(contenders, repeats) if cpu_time else alternate(contenders, repeats)
                rows.append({
                    "case": case.name, "pass": pass_name,
                    "base_ms": t["base"].median * 1e3, "new_ms": t["new"].median * 1e3,
                    "torch_ms": t["torch"].median * 1e3,
                    "base_torch": _median_ratio(t["base"].samples, t["torch"].samples),
                    "new_torch": _median_ratio(t["new"].samples, t["torch"].samples),
                    "new_base": _median_ratio(t["new"].samples, t["base"].samples),
                })
        machine = machine_info(threads)
    clock = "thread CPU" if cpu_time else "wall"
    return {"machine": machine, "repeats": repeats, "clock": clock, "rows": rows}


COLUMNS = [("case", "case", ""), ("pass", "pass", ""), ("base_ms", "base ms", ".2f"),
           ("new_ms", "new ms", ".2f"),
           ("torch_ms", "torch ms", ".2f"), ("base_torch", "base/torch", ".2f"),
           ("new_torch", "new/torch", ".2f"), ("new_base", "new/base", ".2f")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_ab", description=__doc__.splitlines()[0])
    add_common_args(parser, default_repeats=7)
    parser.add_argument("--base", required=True, help="directory holding the old engine as rnn_engine_base")
    parser.add_argument("--cases", default="A,B-gru,B-rnn,C", help="comma-separated case names")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the calling thread's CPU time (needs --threads 1): robust to other jobs")
    args = parser.parse_args(argv)
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time: only meaningful with --threads 1 (other threads' work is not counted)")
    sys.path.insert(0, args.base)
    wanted = args.cases.split(",")
    cases = [QUICK_CASE] if args.quick else [c for c in CASES if c.name in wanted and not c.step_only]
    report = run(cases, min(args.repeats, 2) if args.quick else args.repeats, args.threads, args.cpu_time)
    emit(report, format_table(report["rows"], COLUMNS), args.json)


if __name__ == "__main__":
    main()
