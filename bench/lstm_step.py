"""Where an LSTM step's time goes: `python -m bench.lstm_step [--threads T] [--repeats R] [--quick] [--json]`.

For the shapes of bench.engine's LSTM cases (A: input 128, hidden 256, batch 32, T 64; C's second layer:
input 512, hidden 512, batch 64, T 100), per step, alternating, medians over repeats (bench/common.py):
  - numpy: the engine's recurrent product W_hh (4H, H) x h (H, B) into a preallocated output (NumPy/OpenBLAS);
  - torch.mm: the same product with PyTorch (its BLAS);
  - torch LSTM: a one-layer `nn.LSTM` forward over the T steps, divided by T (oneDNN's fused RNN primitive,
    which PyTorch's CPU LSTM uses for float32);
  - torch LSTM, oneDNN off: the same with `torch.backends.mkldnn.flags(enabled=False)` (PyTorch's own ATen
    kernels: one GEMM and several elementwise passes per step, as the engine);
  - engine LSTM: the engine's one-layer LSTM forward (inference) over the T steps, divided by T.
GFLOP/s count the multiply-adds of the products (the recurrent one; for whole steps also the input one).
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import add_common_args, alternate, emit, format_table, machine_info, pinned_threads

SHAPES = {"A": (128, 256, 32, 64), "C-layer2": (512, 512, 64, 100)}  # input, hidden, batch, steps
QUICK_SHAPES = {"tiny": (8, 16, 4, 5)}


def _contenders(input_size: int, hidden: int, batch: int, steps: int) -> dict:
    import torch

    from rnn_engine import LSTM, no_grad

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4 * hidden, hidden)).astype(np.float32)
    h = rng.standard_normal((hidden, batch)).astype(np.float32)
    out = np.empty((4 * hidden, batch), np.float32)
    wt, ht, outt = torch.from_numpy(w), torch.from_numpy(h), torch.empty(4 * hidden, batch)
    ours = LSTM(input_size, hidden, seed=0)
    theirs = torch.nn.LSTM(input_size, hidden)
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((steps, batch, input_size)).astype(np.float32)
    xt = torch.from_numpy(x)

    def lstm() -> object:
        with torch.no_grad():
            return theirs(xt)

    def lstm_aten() -> object:
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            return theirs(xt)

    def engine() -> object:
        with no_grad():
            return ours(x)

    return {"numpy": lambda: np.matmul(w, h, out=out), "torch.mm": lambda: torch.mm(wt, ht, out=outt),
            "torch LSTM": lstm, "torch LSTM, oneDNN off": lstm_aten, "engine LSTM": engine}


def run(shapes: dict, repeats: int, threads: int) -> dict:
    import torch  # noqa: F401  (imported first so that pinned_threads pins its pool too)

    rows = []
    with pinned_threads(threads):
        for name, (input_size, hidden, batch, steps) in shapes.items():
            timings = alternate(_contenders(input_size, hidden, batch, steps), repeats)
            product = 2 * 4 * hidden * hidden * batch
            whole = product + 2 * 4 * hidden * input_size * batch
            for contender, t in timings.items():
                per_step = t.median / (1 if contender in ("numpy", "torch.mm") else steps)
                flop = product if contender in ("numpy", "torch.mm") else whole
                rows.append({"shape": name, "contender": contender, "us_per_step": per_step * 1e6,
                             "gflops": flop / per_step / 1e9})
        machine = machine_info(threads)
    return {"machine": machine, "repeats": repeats, "rows": rows}


COLUMNS = [("shape", "shape", ""), ("contender", "contender", ""), ("us_per_step", "us per step", ".1f"),
           ("gflops", "GFLOP/s", ".1f")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lstm_step", description=__doc__.splitlines()[0])
    add_common_args(parser, default_repeats=7)
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    report = run(shapes, 1 if args.quick else args.repeats, args.threads)
    emit(report, format_table(report["rows"], COLUMNS), args.json)


if __name__ == "__main__":
    main()
