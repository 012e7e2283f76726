"""Timing helpers shared by the benchmarks: thread pinning, alternating runs, medians, tables and --json.

Every benchmark compares contenders measured in the same process with the same thread count: each repeat
runs every contender once (the order rotates between repeats so that none always runs first on a warm
cache), warm-up runs are excluded, and the figure reported is the median over repeats.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# torch.backends.mkldnn.flags() (the "aten" contenders, oneDNN off) warns about Intel GPUs on every call
warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN", category=UserWarning)


@dataclass
class Timing:
    """Seconds per call of one contender, one entry per repeat."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def add_common_args(parser: argparse.ArgumentParser, default_repeats: int) -> None:
    """Flags every benchmark accepts: --repeats, --quick, --threads, --json."""
    parser.add_argument("--repeats", type=int, default=default_repeats, help="timed repeats per contender")
    parser.add_argument("--quick", action="store_true", help="few repeats, small workloads (smoke use)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every library")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """Give NumPy's BLAS, OpenMP and PyTorch the same number of threads for the block.

    PyTorch is pinned only if it is imported before the block starts: import it first.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads: expected an int >= 1, got {n!r}")
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    old = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(old)


def seconds_per_call(fn: Callable[[], object], number: int) -> float:
    """Wall time of `number` back-to-back calls of `fn`, divided by `number`."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calls_for(fn: Callable[[], object], target_seconds: float) -> int:
    """How many calls of `fn` fill about `target_seconds` (at least 1), timed after one warm-up call."""
    fn()
    once = max(seconds_per_call(fn, 1), 1e-7)
    return max(1, int(target_seconds / once))


def alternate(
    contenders: dict[str, Callable[[], object]],
    repeats: int,
    *,
    warmup: int = 1,
    target_seconds: float = 0.05,
    settle_seconds: float = 0.05,
) -> dict[str, Timing]:
    """Time every contender `repeats` times, alternating between them; warm-up calls are not recorded.

    Each sample is the mean over enough back-to-back calls to last about `target_seconds`, so that
    microsecond-scale calls (one generation step) are not lost in timer noise. Before each sample the
    process sleeps `settle_seconds`, and short calls get one unrecorded call: the thread pools of the
    library that ran before (OpenMP, onnxruntime, OpenBLAS) busy-wait for a while after their last call,
    and on a 2-core machine that spinning would otherwise be billed to whoever runs next.
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected an int >= 1, got {repeats!r}")
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            contenders[name]()
    number = {name: calls_for(contenders[name], target_seconds) for name in names}
    timings = {name: Timing(name) for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            time.sleep(settle_seconds)
            if number[name] > 1:
                contenders[name]()
            timings[name].samples.append(seconds_per_call(contenders[name], number[name]))
    return timings


def machine_info(threads: int) -> dict:
    """CPU, thread count and the BLAS NumPy uses (from threadpoolctl), for the report."""
    import numpy
    from threadpoolctl import threadpool_info

    torch = sys.modules.get("torch")
    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "threading_layer")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numpy_blas": blas,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ},
    }


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table; `columns` holds (key, header, format spec) and missing values print as '-'."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else format(row[k], spec) for k, _, spec in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(report: dict, table: str, as_json: bool) -> None:
    """Print the report as JSON (machines) or as the table plus the machine line (people)."""
    if as_json:
        print(json.dumps(report, indent=2))
        return
    m = report["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["numpy_blas"])
    print(f"{m['cpu']}, {m['cpu_count']} cores, {m['threads']} threads; numpy {m['numpy']} with {blas}; "
          f"load average {m['load_average_1min']} at the end")
    print(table)
