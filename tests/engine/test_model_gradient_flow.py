"""examples/vanishing_gradients.py measures delta_t = dL/dh_t correctly: compared with finite differences of
the loss under a perturbation of h_t (and c_t for the LSTM), and it writes a PNG."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vanishing_gradients.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("vanishing_gradients", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["tanh RNN", "IRNN (ReLU, identity init)", "LSTM", "GRU"])
def test_delta_norms_match_finite_differences(example, name):
    rng = np.random.default_rng(0)
    T, B, I, H = 6, 1, 3, 4
    layer = example.NETWORKS[name](I, H, np.random.default_rng(1))
    x = rng.standard_normal((T, B, I))
    w = rng.standard_normal(H)
    norms = example.delta_norms(layer, x, w)
    hs, cs = example.states(layer, x)
    is_lstm = cs is not None

    def loss_from(t, h, c):
        state = (h[None], c[None]) if is_lstm else h[None]
        _, h_n = layer(x[t + 1 :], state)
        return float((h_n[0] if is_lstm else h_n)[-1, 0] @ w)

    t, eps = 2, 1e-6
    grads = []
    for which in ([0, 1] if is_lstm else [0]):
        base = [hs[t].copy(), cs[t].copy() if is_lstm else None]
        g = np.zeros(H)
        for k in range(H):
            plus = [a.copy() if a is not None else None for a in base]
            minus = [a.copy() if a is not None else None for a in base]
            plus[which][0, k] += eps
            minus[which][0, k] -= eps
            g[k] = (loss_from(t, *plus) - loss_from(t, *minus)) / (2 * eps)
        grads.append(g)
    assert norms[t] == pytest.approx(np.linalg.norm(np.concatenate(grads)), rel=1e-6)
    assert norms[-1] == pytest.approx(np.linalg.norm(w))


def test_example_writes_a_png(example, tmp_path):
    pytest.importorskip("matplotlib")
    out = example.main(["--out", str(tmp_path / "g.png"), "--steps", "8", "--hidden", "4", "--batch", "2"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
