"""Plot how the gradient of a loss at the last step fades (or not) as it flows back through time.

For a tanh RNN, an identity-initialised ReLU RNN (IRNN), an LSTM and a GRU at initialisation, a loss
L = w . h_T is placed on the last hidden state of random input sequences, and the norm of
delta_t = dL/dh_t is plotted against the distance T - t from the loss.

How delta_t is measured, using only the layers' public forward/backward: the layers' `backward` returns the
gradient of the initial state. Running the same layer from h_t (and c_t for the LSTM) over the remaining
inputs x_{t+1..T} and backpropagating dL/dh_T = w therefore gives exactly dL/dh_t, one backward per t
(O(T^2) steps, nothing at these sizes). For the LSTM the recurrent state is the pair (h_t, c_t), so its
delta_t is the pair (dL/dh_t, dL/dc_t) and the plot shows the norm of both together.

What to expect: the tanh RNN's delta shrinks geometrically; the IRNN's stays near 1 (identity recurrence,
ReLU passes gradients unchanged where active). At initialisation an LSTM's forget gate is about
sigmoid(0) = 0.5, so its delta also decays; a forget-gate bias of 1 (drawn as a second LSTM curve) slows the
decay, and training can push the forget gate towards 1 to keep it, which is what lets LSTMs learn long
dependencies (see the adding problem in tests/engine/test_learning.py).

Usage: python examples/vanishing_gradients.py [--out out/vanishing_gradients.png] [--steps 100] [--hidden 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rnn_engine.nn.recurrent import GRU, LSTM, RNN

NETWORKS = {
    "tanh RNN": lambda I, H, rng: RNN(I, H, nonlinearity="tanh", dtype=np.float64, seed=rng),
    "IRNN (ReLU, identity init)": lambda I, H, rng: RNN(I, H, nonlinearity="relu", init="identity",
                                                        dtype=np.float64, seed=rng),
    "LSTM": lambda I, H, rng: LSTM(I, H, dtype=np.float64, seed=rng),
    "LSTM, forget bias 1": lambda I, H, rng: LSTM(I, H, dtype=np.float64, seed=rng, forget_bias=1.0),
    "GRU": lambda I, H, rng: GRU(I, H, dtype=np.float64, seed=rng),
}


def states(layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """h_t and (LSTM) c_t after every step: (T, B, H) each, by stepping one input at a time."""
    T, B, _ = x.shape
    hs, cs, state = [], [], None
    for t in range(T):
        if isinstance(layer, LSTM):
            _, state = layer(x[t : t + 1], state)
            hs.append(state[0][0])
            cs.append(state[1][0])
        else:
            _, h = layer(x[t : t + 1], state)
            state = h
            hs.append(h[0])
    return np.stack(hs), (np.stack(cs) if cs else None)


def delta_norms(layer, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over the batch of ||delta_t|| for t = 0..T-1, L = sum_b w . h_T[b] (LSTM: ||(dh_t, dc_t)||)."""
    T, B, _ = x.shape
    hs, cs = states(layer, x)
    H = hs.shape[-1]
    norms = np.empty(T)
    norms[T - 1] = np.linalg.norm(w)
    d_h_n = np.broadcast_to(w, (1, B, H)).copy()
    for t in range(T - 1):
        rest = x[t + 1 :]
        zero_out = np.zeros((T - t - 1, B, H))
        if isinstance(layer, LSTM):
            layer(rest, (hs[t][None], cs[t][None]))
            _, (dh0, dc0) = layer.backward(zero_out, d_h_n, None)
            delta = np.concatenate([dh0[0], dc0[0]], axis=-1)  # (B, 2H)
        else:
            layer(rest, hs[t][None])
            _, dh0 = layer.backward(zero_out, d_h_n)
            delta = dh0[0]  # (B, H)
        norms[t] = np.linalg.norm(delta, axis=-1).mean()
    return norms


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/vanishing_gradients.png", help="PNG path to write")
    parser.add_argument("--steps", type=int, default=100, help="sequence length T")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size H")
    parser.add_argument("--batch", type=int, default=16, help="random sequences averaged")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 2 or args.hidden < 1 or args.batch < 1:
        parser.error("--steps must be >= 2, --hidden and --batch >= 1")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(args.seed)
    I, H, T, B = 8, args.hidden, args.steps, args.batch
    x = rng.standard_normal((T, B, I))
    w = rng.standard_normal(H)
    w /= np.linalg.norm(w)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, make in NETWORKS.items():
        norms = delta_norms(make(I, H, np.random.default_rng(args.seed)), x, w)
        distance = T - 1 - np.arange(T)
        ax.semilogy(distance, np.maximum(norms, 1e-300), label=name)
        mid = min(10, T - 1)
        print(f"{name:27s} ||delta|| at distance 0: {norms[-1]:.3g}, {mid}: {norms[-1 - mid]:.3g}, "
              f"{T - 1}: {norms[0]:.3g}")
    ax.set_xlabel("distance from the loss, T - t (steps)")
    ax.set_ylabel("mean ||delta_t||  (LSTM: ||(dL/dh_t, dL/dc_t)||)")
    ax.set_title(f"Gradient flow back through time at initialisation (H={H}, T={T})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
