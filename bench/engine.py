"""Engine vs PyTorch CPU (and onnxruntime for one generation step): `python -m bench.engine [--json]`.

Cases (float32, same thread count for every library, alternating runs, medians over repeats):
  A      LSTM  input 128, hidden 256, batch 32, T 64
  B-gru  GRU   same shapes;  B-rnn  tanh RNN, same shapes
  C      2-layer LSTM, input 64, hidden 512, batch 64, T 100
  D      one generation step of C's network at batch 1 (engine `step` with `step_weights()`, as generation
         runs it: the 1-row kernel; "det": the --deterministic step, padded to 2 rows; PyTorch T=1;
         onnxruntime)
"aten": the same PyTorch module with oneDNN switched off (`torch.backends.mkldnn.flags(enabled=False)`):
PyTorch's CPU LSTM otherwise runs oneDNN's fused RNN primitive (JIT-compiled kernels that fuse the gate
arithmetic into the step); without it PyTorch runs its own ATen kernels, one GEMM and several elementwise
passes per step, as the engine does with NumPy. The target is against the default (oneDNN) PyTorch.
"forward" runs in inference mode (engine `no_grad`, torch `no_grad`); "forward+backward" computes the
gradients of the inputs and of every parameter from a fixed random output gradient.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.common import add_common_args, alternate, emit, format_table, machine_info, pinned_threads


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "lstm" | "gru" | "rnn"
    input_size: int
    hidden_size: int
    batch: int
    steps: int
    num_layers: int = 1
    step_only: bool = False  # D: one step with carried state, inference only


CASES = [
    Case("A", "lstm", 128, 256, 32, 64),
    Case("B-gru", "gru", 128, 256, 32, 64),
    Case("B-rnn", "rnn", 128, 256, 32, 64),
    Case("C", "lstm", 64, 512, 64, 100, num_layers=2),
    Case("D", "lstm", 64, 512, 1, 1, num_layers=2, step_only=True),
]
# The issues' targets for the median ratio engine / PyTorch (D: also no slower than onnxruntime); issue 18:
# A's forward at one thread within 1.2, every other sequence case and pass within 1.0.
TARGETS = {"forward": {"A": 1.2}, "default": 1.0, "step": 0.25}
QUICK_CASES = [Case("tiny", "lstm", 8, 16, 4, 5), Case("tiny-step", "lstm", 8, 16, 1, 1, 2, step_only=True)]
QUICK_CASE = QUICK_CASES[0]  # the tiny sequence case (bench/onnx.py reuses it)


def _models(case: Case, seed: int = 0):
    """The engine layer and a torch layer holding the same weights."""
    import torch

    from rnn_engine import GRU, LSTM, RNN

    engine_cls = {"lstm": LSTM, "gru": GRU, "rnn": RNN}[case.kind]
    torch_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[case.kind]
    ours = engine_cls(case.input_size, case.hidden_size, case.num_layers, seed=seed)
    theirs = torch_cls(case.input_size, case.hidden_size, case.num_layers)
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def _sequence_contenders(case: Case, backward: bool) -> dict[str, Callable[[], object]]:
    import torch

    from rnn_engine import no_grad

    ours, theirs = _models(case)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((case.steps, case.batch, case.input_size)).astype(np.float32)
    d_out = rng.standard_normal((case.steps, case.batch, case.hidden_size)).astype(np.float32)
    xt, d_out_t = torch.from_numpy(x), torch.from_numpy(d_out)
    if not backward:
        theirs.eval()

        def engine():
            with no_grad():
                return ours(x)

        def pytorch():
            with torch.no_grad():
                return theirs(xt)

        def pytorch_aten():
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
                return theirs(xt)

        return {"engine": engine, "torch": pytorch, "aten": pytorch_aten}

    def engine_fb():
        ours(x)
        return ours.backward(d_out)

    xt_grad = xt.clone().requires_grad_(True)

    def torch_fb():
        for p in theirs.parameters():
            p.grad = None
        xt_grad.grad = None
        out = theirs(xt_grad)[0]
        out.backward(d_out_t)

    def aten_fb():
        with torch.backends.mkldnn.flags(enabled=False):
            torch_fb()

    return {"engine": engine_fb, "torch": torch_fb, "aten": aten_fb}


def _step_contenders(case: Case, threads: int) -> dict[str, Callable[[], object]]:
    """One generation step at batch 1, state carried in and out; checks the three agree before timing."""
    import torch

    from bench.onnx_lstm import ort_session, stacked_lstm_model
    from rnn_engine import no_grad

    ours, theirs = _models(case)
    theirs.eval()
    rng = np.random.default_rng(2)
    L, B, H = case.num_layers, case.batch, case.hidden_size
    x = rng.standard_normal((B, case.input_size)).astype(np.float32)
    h0, c0 = (rng.standard_normal((L, B, H)).astype(np.float32) for _ in range(2))
    xt, h0t, c0t = torch.from_numpy(x[None]), torch.from_numpy(h0), torch.from_numpy(c0)
    session = ort_session(stacked_lstm_model(ours.state_dict(), L, case.input_size, H), threads)
    feeds = {"x": x[None], "h0": h0, "c0": c0}

    weights = ours.step_weights()  # generation's copies (StepPlan), made once
    x2, h2, c2 = np.repeat(x, 2, axis=0), np.repeat(h0, 2, axis=1), np.repeat(c0, 2, axis=1)

    def engine():
        with no_grad():
            return ours.step(x, (h0, c0), weights=weights)

    def deterministic():  # --deterministic pads a lone row to (at least) MIN_ROWS = 2 rows
        with no_grad():
            y, (h, c) = ours.step(x2, (h2, c2), weights=weights)
            return y[:1], (h[:, :1], c[:, :1])

    def pytorch():
        with torch.no_grad():
            return theirs(xt, (h0t, c0t))

    def onnxruntime():
        return session.run(None, feeds)

    y_ours = engine()[0]
    for name, y in (("torch", pytorch()[0][0].numpy()), ("onnxruntime", onnxruntime()[0][0])):
        if not np.allclose(y_ours, y, atol=1e-4):
            raise AssertionError(f"step output differs from {name}: max {np.abs(y_ours - y).max():.2e}")
    return {"engine": engine, "det": deterministic, "torch": pytorch, "onnxruntime": onnxruntime}


def _target(case: Case, pass_name: str, threads: int = 1) -> float:
    if case.step_only:
        return TARGETS["step"]
    if threads > 1:
        return TARGETS["default"]
    return TARGETS.get(pass_name, {}).get(case.name, TARGETS["default"])


def _median_ratio(a: list[float], b: list[float]) -> float:
    return float(np.median(np.asarray(a) / np.asarray(b)))


def run(
    cases: list[Case],
    repeats: int,
    threads: int,
    *,
    target_seconds: float = 0.05,
    settle_seconds: float = 0.05,
) -> dict:
    """Time every case and return the JSON-able report (machine, one row per case and pass)."""
    import torch  # noqa: F401  (imported before pinning, so that pinned_threads sets its thread count too)

    rows = []
    with pinned_threads(threads):
        for case in cases:
            passes = [("step", None)] if case.step_only else [("forward", False), ("forward+backward", True)]
            for pass_name, backward in passes:
                if case.step_only:
                    contenders = _step_contenders(case, threads)
                else:
                    contenders = _sequence_contenders(case, backward)
                t = alternate(contenders, repeats, target_seconds=target_seconds,
                              settle_seconds=settle_seconds)
                row = {
                    "case": case.name, "kind": case.kind, "layers": case.num_layers, "input": case.input_size,
                    "hidden": case.hidden_size, "batch": case.batch, "steps": case.steps, "pass": pass_name,
                    "engine_ms": t["engine"].median * 1e3, "torch_ms": t["torch"].median * 1e3,
                    "ratio": _median_ratio(t["engine"].samples, t["torch"].samples),
                    "target": _target(case, pass_name, threads), "repeats": repeats,
                }
                if "aten" in t:  # PyTorch with oneDNN off: its own ATen kernels (see the module docstring)
                    row["aten_ms"] = t["aten"].median * 1e3
                    row["ratio_aten"] = _median_ratio(t["engine"].samples, t["aten"].samples)
                if "onnxruntime" in t:
                    row["ort_ms"] = t["onnxruntime"].median * 1e3
                    row["ratio_ort"] = _median_ratio(t["engine"].samples, t["onnxruntime"].samples)
                if "det" in t:
                    row["det_ms"] = t["det"].median * 1e3
                    row["ratio_det_ort"] = _median_ratio(t["det"].samples, t["onnxruntime"].samples)
                row["meets_target"] = row["ratio"] <= row["target"] and row.get("ratio_ort", 0.0) <= 1.0
                rows.append(row)
        machine = machine_info(threads)  # inside the block: reports the pinned thread counts
    return {"machine": machine, "rows": rows}


COLUMNS = [
    ("case", "case", ""), ("pass", "pass", ""),
    ("engine_ms", "engine ms", ".3f"), ("torch_ms", "torch ms", ".3f"),
    ("ratio", "engine/torch", ".2f"), ("target", "target", ".2f"),
    ("aten_ms", "aten ms", ".3f"), ("ratio_aten", "engine/aten", ".2f"), ("ort_ms", "ort ms", ".3f"),
    ("ratio_ort", "engine/ort", ".2f"), ("det_ms", "det ms", ".3f"), ("ratio_det_ort", "det/ort", ".2f"),
    ("meets_target", "ok", ""),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.splitlines()[0])
    add_common_args(parser, default_repeats=7)
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated case names")
    args = parser.parse_args(argv)
    wanted = args.cases.split(",")
    unknown = sorted(set(wanted) - {c.name for c in CASES})
    if unknown:
        parser.error(f"--cases: unknown {unknown}, expected names from {[c.name for c in CASES]}")
    if args.quick:
        report = run(QUICK_CASES + CASES[-1:], repeats=min(args.repeats, 3), threads=args.threads,
                     target_seconds=0.01, settle_seconds=0.01)
    else:
        report = run([c for c in CASES if c.name in wanted], repeats=args.repeats, threads=args.threads)
    emit(report, format_table(report["rows"], COLUMNS), args.json)


if __name__ == "__main__":
    main()
