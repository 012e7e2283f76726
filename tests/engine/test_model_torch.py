"""Training parity with PyTorch: the same initial weights, batches and optimizer give the same loss curve
(float64, a few dozen steps) for a language model (truncated BPTT with carried state) and a bidirectional
classifier."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.tasks import prepare
from rnn_engine.trainer import train
from tests.engine.model_cases import tiny_config, tiny_dataset, tiny_train

torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle for these tests")
pytestmark = pytest.mark.torch


def torch_modules(model, cell: str, bidirectional: bool):
    """torch Embedding, RNN stack and Linear holding the engine model's weights (float64)."""
    net = model.net
    rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    emb = torch.nn.Embedding(*net.embedding.params["weight"].shape, dtype=torch.float64)
    rnn = rnn_cls(
        net.rnn.input_size,
        net.rnn.hidden_size,
        num_layers=net.rnn.num_layers,
        batch_first=True,
        bidirectional=bidirectional,
        dtype=torch.float64,
    )
    head = torch.nn.Linear(net.head.in_features, net.head.out_features, dtype=torch.float64)
    mods = {"embedding": emb, "rnn": rnn, "head": head}
    with torch.no_grad():
        for name, p in model.params.items():
            prefix, key = name.split(".", 1)
            getattr(mods[prefix], key).copy_(torch.from_numpy(p))
    return mods


def run_engine(cfg, tcfg, ds):
    losses = []
    model = train(cfg, tcfg, ds, on_event=lambda e: e.kind == "step" and losses.append(e.train_loss))
    return losses, model


def test_language_model_loss_curve_matches_torch():
    cfg = tiny_config("language_model", "lstm", dtype="float64", num_layers=2, hidden_size=8)
    tcfg = tiny_train(
        steps=30,
        batch_size=3,
        bptt=7,
        lr=0.01,
        clip_norm=0.5,
        optimizer="adam",
        schedule="step",
        step_size=10,
        gamma=0.5,
        eval_every=100,
    )
    ds = tiny_dataset("language_model")
    model, objective = prepare(cfg, tcfg, ds)
    mods = torch_modules(model, "lstm", False)
    params = [p for m in mods.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    expected, state = [], None
    for step in range(30):
        x, y, first = objective.batch(step)
        if first:
            state = None
        out, state = mods["rnn"](mods["embedding"](torch.from_numpy(x)), state)
        state = tuple(s.detach() for s in state)
        logits = mods["head"](out)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
        sched.step()
        expected.append(loss.item())
    losses, trained = run_engine(cfg, tcfg, ds)
    np.testing.assert_allclose(losses, expected, rtol=1e-9)
    np.testing.assert_allclose(trained.params["head.weight"], mods["head"].weight.detach().numpy(), atol=1e-9)


def test_bidirectional_classifier_loss_curve_matches_torch():
    cfg = tiny_config("classification", "gru", dtype="float64", bidirectional=True, hidden_size=6)
    tcfg = tiny_train(
        steps=24,
        batch_size=5,
        lr=0.1,
        optimizer="sgd",
        momentum=0.9,
        clip_norm=0.0,
        weight_decay=1e-3,
        eval_every=100,
    )
    ds = tiny_dataset("classification")
    model, objective = prepare(cfg, tcfg, ds)
    mods = torch_modules(model, "gru", True)
    params = [p for m in mods.values() for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    expected = []
    H = 6
    for step in range(24):
        batch = objective.batch(step)
        ids, lengths = model.pad([e[0] for e in batch])
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            mods["embedding"](torch.from_numpy(ids)),
            torch.from_numpy(lengths),
            batch_first=True,
            enforce_sorted=False,
        )
        _, h_n = mods["rnn"](packed)
        feat = torch.cat([h_n[-2], h_n[-1]], dim=1)  # forward at its end, backward at its start
        loss = torch.nn.functional.cross_entropy(mods["head"](feat), torch.tensor([e[1] for e in batch]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        expected.append(loss.item())
    assert feat.shape[1] == 2 * H
    losses, _ = run_engine(cfg, tcfg, ds)
    np.testing.assert_allclose(losses, expected, rtol=1e-9)
