"""Training throughput of a char LSTM language model, engine vs PyTorch CPU: `python -m bench.training`.

The model: embedding 64 -> 2-layer LSTM, hidden 512 -> Linear to the vocabulary (the default corpus' chars),
float32, batch 64, window (truncated BPTT) 100. One timed call is one full training step on the same batch for
both: forward, cross-entropy, backward, gradient clipping at 5 and an Adam update; the hidden state is carried
between steps (detached). Same thread count for both, alternating runs, medians over repeats
(bench/common.py).
Reported: tokens per second (batch x window / seconds per step) and the engine/PyTorch throughput ratio;
"aten" is a second PyTorch twin run with oneDNN off (`torch.backends.mkldnn.flags(enabled=False)`), whose
LSTM then uses PyTorch's own ATen kernels instead of oneDNN's fused RNN primitive.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from bench.common import add_common_args, alternate, emit, format_table, machine_info, pinned_threads


def engine_step(hidden: int, layers: int, batch: int, window: int) -> tuple[Callable[[], object], dict]:
    """A zero-argument engine training step and the initial weights (to copy into the torch twin)."""
    from rnn_engine.config import ModelConfig, TrainConfig
    from rnn_engine.corpus import default_corpus
    from rnn_engine.optim import clip_grad_norm
    from rnn_engine.tasks import load_dataset, prepare
    from rnn_engine.trainer import make_optimizer

    cfg = ModelConfig(hidden_size=hidden, num_layers=layers, embedding_dim=64, seed=0)
    tcfg = TrainConfig(steps=1, batch_size=batch, bptt=window, lr=2e-3, clip_norm=5.0)
    model, objective = prepare(cfg, tcfg, load_dataset("language_model", default_corpus(batch * window * 3)))
    weights = {k: v.copy() for k, v in model.params.items()}
    opt = make_optimizer(tcfg, model.params)
    batch_data = objective.batch(1)
    state = {"carry": None}

    def step() -> None:
        model.net.train()
        _, _, state["carry"] = objective.train_step(batch_data, state["carry"])
        grads = model.net.grads()
        clip_grad_norm(grads, 5.0)
        opt.step(grads)

    return step, {"weights": weights, "batch": batch_data, "vocab": model.tokenizer.vocab_size}


def torch_step(hidden: int, layers: int, setup: dict) -> Callable[[], object]:
    import torch

    V = setup["vocab"]
    emb = torch.nn.Embedding(V, 64)
    rnn = torch.nn.LSTM(64, hidden, num_layers=layers, batch_first=True)
    head = torch.nn.Linear(hidden, V)
    mods = {"embedding": emb, "rnn": rnn, "head": head}
    with torch.no_grad():
        for name, arr in setup["weights"].items():
            prefix, key = name.split(".", 1)
            getattr(mods[prefix], key).copy_(torch.from_numpy(arr))
    params = [p for m in mods.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    x, y, _ = setup["batch"]
    x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y)).reshape(-1)
    state = {"carry": None}

    def step() -> None:
        out, carry = rnn(emb(x), state["carry"])
        state["carry"] = tuple(s.detach() for s in carry)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return step


def _without_onednn(step: Callable[[], object]) -> Callable[[], object]:
    """`step` with PyTorch's oneDNN off: its LSTM then runs ATen's own kernels (bench/engine.py)."""
    import torch

    def aten_step() -> object:
        with torch.backends.mkldnn.flags(enabled=False):
            return step()

    return aten_step


def run(hidden: int, layers: int, batch: int, window: int, repeats: int, threads: int) -> dict:
    contenders: dict[str, Callable[[], object]] = {}
    try:
        import torch  # noqa: F401  (imported first so that pinned_threads pins its pool too)
    except ImportError:
        pass
    with pinned_threads(threads):
        contenders["engine"], setup = engine_step(hidden, layers, batch, window)
        try:
            contenders["torch"] = torch_step(hidden, layers, setup)
            contenders["aten"] = _without_onednn(torch_step(hidden, layers, setup))
        except ImportError:
            pass
        timings = alternate(contenders, repeats, warmup=1, target_seconds=0.0, settle_seconds=0.2)
    tokens = batch * window
    row: dict = {"case": f"char LSTM {layers}x{hidden}, B={batch}, T={window}",
                 "engine_tok_s": tokens / timings["engine"].median, "engine_s": timings["engine"].median}
    if "torch" in timings:
        row["torch_tok_s"] = tokens / timings["torch"].median
        row["torch_s"] = timings["torch"].median
        row["ratio"] = row["engine_tok_s"] / row["torch_tok_s"]
        row["aten_tok_s"] = tokens / timings["aten"].median
        row["ratio_aten"] = row["engine_tok_s"] / row["aten_tok_s"]
    return {"machine": machine_info(threads), "repeats": repeats, "rows": [row]}


COLUMNS = [("case", "case", ""), ("engine_s", "engine s/step", ".3f"),
           ("engine_tok_s", "engine tok/s", ".0f"),
           ("torch_s", "torch s/step", ".3f"), ("torch_tok_s", "torch tok/s", ".0f"),
           ("ratio", "engine/torch", ".2f"), ("aten_tok_s", "aten tok/s", ".0f"),
           ("ratio_aten", "engine/aten", ".2f")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__.splitlines()[0])
    add_common_args(parser, default_repeats=5)
    args = parser.parse_args(argv)
    if args.quick:
        report = run(128, 2, 16, 50, repeats=min(args.repeats, 2), threads=args.threads)
    else:
        report = run(512, 2, 64, 100, repeats=args.repeats, threads=args.threads)
    emit(report, format_table(report["rows"], COLUMNS), args.json)


if __name__ == "__main__":
    main()
