"""Settings a char-rnn / IRNN user looks for: forget_bias in ModelConfig, RMSprop in TrainConfig."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_engine.config import ModelConfig, TrainConfig
from rnn_engine.errors import InvalidInput
from rnn_engine.model import Model
from rnn_engine.optim import RMSprop
from rnn_engine.tokenizers import CharTokenizer
from rnn_engine.trainer import make_optimizer


@pytest.mark.parametrize("task", ["language_model", "seq2seq", "forecasting"])
def test_forget_bias_sets_every_lstm_layers_forget_gate(task):
    cfg = ModelConfig(task=task, cell="lstm", hidden_size=5, num_layers=2, embedding_dim=3, forget_bias=1.0)
    kw = {"tokenizer": CharTokenizer.fit(["abc"])} if task != "forecasting" else {}
    model = Model(cfg, **kw)
    ih = [v for k, v in model.params.items() if "bias_ih" in k]
    hh = [v for k, v in model.params.items() if "bias_hh" in k]
    assert ih and hh
    for b in ih:
        np.testing.assert_array_equal(b[5:10], 1.0)  # PyTorch gate order i, f, g, o: block 1 is f
        assert not np.all(b[:5] == 1.0)
    for b in hh:
        np.testing.assert_array_equal(b[5:10], 0.0)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_forget_bias_is_refused_for_a_cell_without_a_forget_gate():
    with pytest.raises(InvalidInput, match=r"^forget_bias: only an lstm"):
        ModelConfig(cell="gru", forget_bias=1.0).validate()
    with pytest.raises(InvalidInput, match=r"^forget_bias: "):
        ModelConfig(cell="lstm", forget_bias="1").validate()


def test_rmsprop_is_a_train_config_optimizer_with_torchs_settings():
    params = {"w": np.zeros(3)}
    opt = make_optimizer(TrainConfig(optimizer="rmsprop", lr=0.002, rmsprop_alpha=0.95, momentum=0.5), params)
    assert isinstance(opt, RMSprop)
    assert opt.hyperparameters() == {
        "lr": 0.002,
        "alpha": 0.95,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.5,
        "centered": False,
        "maximize": False,
    }
    with pytest.raises(InvalidInput, match=r"^rmsprop_alpha: "):
        TrainConfig(rmsprop_alpha=1.5).validate()
