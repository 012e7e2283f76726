"""The networks behind each model kind (see `rnn_engine.model.Model` for the public API)."""

from __future__ import annotations

from typing import Any

from ..backend import xp
from ..config import ModelConfig
from .base import Network
from .conditional_net import LabelDecoderNet, Seq2SeqNet
from .forecast_net import ForecastNet
from .token_net import TokenNet

__all__ = ["Network", "build_network"]


def build_network(
    config: ModelConfig, *, vocab_size: int = 0, num_labels: int = 0, num_features: int = 1
) -> Network:
    """The network of `config.task` with fresh weights drawn from `config.seed`."""
    rng = xp.random.default_rng(config.seed)
    dtype = xp.dtype(config.dtype)
    cfg: dict[str, Any] = dict(
        embedding_dim=config.embedding_dim,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        cell=config.cell,
        dropout=config.dropout,
        init=config.init,
        dtype=dtype,
        forget_bias=config.forget_bias,
    )
    task = config.task
    if task == "forecasting":
        return ForecastNet(
            num_features,
            rng=rng,
            residual=config.residual,
            **{k: v for k, v in cfg.items() if k != "embedding_dim"},
        )
    if task == "one_to_many":
        return LabelDecoderNet(vocab_size, num_labels, cfg, rng)
    if task == "seq2seq":
        return Seq2SeqNet(vocab_size, cfg, rng)
    out = vocab_size if task == "language_model" else num_labels
    readout = "last" if task == "classification" else "all"
    return TokenNet(vocab_size, out, bidirectional=config.bidirectional, rng=rng, readout=readout, **cfg)
