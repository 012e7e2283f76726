"""Engine vs onnxruntime on the graphs our exporter writes: `python -m bench.onnx [--json] [--quick]`.

Same shapes as bench/engine.py (float32, inference only, same thread count for both, alternating runs,
medians over repeats):
  A      LSTM  input 128, hidden 256, batch 32, T 64           export_recurrent(layer)
  B-gru  GRU   same shapes;  B-rnn  tanh RNN, same shapes       export_recurrent(layer)
  C      2-layer LSTM, input 64, hidden 512, batch 64, T 100    export_recurrent(layer)
  D      one step of C's stack at batch 1, state in and out     export_recurrent(layer, initial_state=True)
  D-lm   one generation step of a whole language model (vocab 65, embedding 64, C's stack, head), batch 1:
         engine `net.forward` on one token vs the exported "step" graph
Every pair is checked to agree (1e-4) before it is timed. The ratio column is engine / onnxruntime
(below 1: the engine is faster), the median of per-repeat ratios.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from bench.common import add_common_args, alternate, emit, format_table, machine_info, pinned_threads
from bench.engine import CASES, QUICK_CASE, Case


def ort_session(model, threads: int):
    """An onnxruntime CPU session: `threads` intra-op threads, one inter-op thread (as bench.engine)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _layer(case: Case):
    from rnn_engine import GRU, LSTM, RNN

    cls = {"lstm": LSTM, "gru": GRU, "rnn": RNN}[case.kind]
    return cls(case.input_size, case.hidden_size, case.num_layers, seed=0).eval()


def _check(name: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    if not np.allclose(ours, theirs, atol=1e-4):
        raise AssertionError(f"{name}: engine and onnxruntime differ by {np.abs(ours - theirs).max():.2e}")


def _sequence_contenders(case: Case, threads: int) -> dict[str, Callable[[], object]]:
    from rnn_engine import no_grad
    from rnn_engine.onnx_export import export_recurrent

    layer = _layer(case)
    x = np.random.default_rng(1).standard_normal((case.steps, case.batch, case.input_size)).astype(np.float32)
    session = ort_session(export_recurrent(layer), threads)

    def engine():
        with no_grad():
            return layer(x)

    def onnxruntime():
        return session.run(None, {"x": x})

    _check(case.name, engine()[0], onnxruntime()[0])
    return {"engine": engine, "onnxruntime": onnxruntime}


def _step_contenders(case: Case, threads: int) -> dict[str, Callable[[], object]]:
    from rnn_engine import no_grad
    from rnn_engine.onnx_export import export_recurrent

    layer = _layer(case)
    rng = np.random.default_rng(2)
    L, B, H = case.num_layers, case.batch, case.hidden_size
    x = rng.standard_normal((B, case.input_size)).astype(np.float32)
    h0, c0 = (rng.standard_normal((L, B, H)).astype(np.float32) for _ in range(2))
    session = ort_session(export_recurrent(layer, initial_state=True), threads)
    feeds = {"x": x[None], "h0": h0, "c0": c0}

    def engine():
        with no_grad():
            return layer.step(x, (h0, c0))

    def onnxruntime():
        return session.run(None, feeds)

    _check(case.name, engine()[0], onnxruntime()[0][0])
    return {"engine": engine, "onnxruntime": onnxruntime}


def _lm_step_contenders(case: Case, threads: int) -> dict[str, Callable[[], object]]:
    """One token through a whole language model (embedding, stack, head), state carried in and out."""
    from rnn_engine import no_grad
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.onnx_export import export_model
    from rnn_engine.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.fit(["".join(chr(c) for c in range(0x21, 0x21 + 61))])  # 4 specials + 61
    config = ModelConfig(task="language_model", cell="lstm", hidden_size=case.hidden_size,
                         num_layers=case.num_layers, embedding_dim=case.input_size)
    model = Model(config, tokenizer=tokenizer)
    net = model.net.eval()
    rng = np.random.default_rng(3)
    L, H = case.num_layers, case.hidden_size
    h, c = (rng.standard_normal((L, 1, H)).astype(np.float32) for _ in range(2))
    token = np.array([[7]])
    session = ort_session(export_model(model, "step"), threads)
    feeds = {"token": token[0], "h": h, "c": c}

    def engine():
        with no_grad():
            return net.forward(token, None, (h, c))

    def onnxruntime():
        return session.run(None, feeds)

    _check("D-lm", engine()[0][0, 0], onnxruntime()[0][0])
    return {"engine": engine, "onnxruntime": onnxruntime}


def run(cases: list[Case], repeats: int, threads: int, target_seconds: float = 0.05) -> dict:
    """Time every case and return the JSON-able report (machine, one row per case)."""
    import onnxruntime

    rows = []
    with pinned_threads(threads):
        for case in cases:
            names = [(case.name, _step_contenders)] if case.step_only else [(case.name, _sequence_contenders)]
            if case.step_only:
                names.append((f"{case.name}-lm", _lm_step_contenders))
            for name, contenders_for in names:
                t = alternate(contenders_for(case, threads), repeats, target_seconds=target_seconds)
                ratios = np.asarray(t["engine"].samples) / np.asarray(t["onnxruntime"].samples)
                rows.append({
                    "case": name, "kind": case.kind, "layers": case.num_layers, "input": case.input_size,
                    "hidden": case.hidden_size, "batch": case.batch, "steps": case.steps,
                    "engine_ms": t["engine"].median * 1e3, "ort_ms": t["onnxruntime"].median * 1e3,
                    "ratio_ort": float(np.median(ratios)), "repeats": repeats,
                })
    machine = machine_info(threads)
    machine["onnxruntime"] = onnxruntime.__version__
    return {"machine": machine, "rows": rows}


COLUMNS = [
    ("case", "case", ""), ("kind", "cell", ""), ("layers", "L", "d"), ("hidden", "H", "d"),
    ("batch", "B", "d"), ("steps", "T", "d"), ("engine_ms", "engine ms", ".3f"), ("ort_ms", "ort ms", ".3f"),
    ("ratio_ort", "engine/ort", ".2f"),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.onnx", description=__doc__.splitlines()[0])
    add_common_args(parser, default_repeats=11)
    args = parser.parse_args(argv)
    if args.quick:
        report = run([QUICK_CASE, CASES[-1]], repeats=min(args.repeats, 3), threads=args.threads,
                     target_seconds=0.01)
    else:
        report = run(CASES, repeats=args.repeats, threads=args.threads)
    emit(report, format_table(report["rows"], COLUMNS), args.json)


if __name__ == "__main__":
    main()
