"""Every language-model run reports the best n-gram on the same validation tokens and the ratio to it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_engine.config import ModelConfig, TrainConfig
from rnn_engine.ngram import NGramModel
from rnn_engine.tasks import Dataset
from rnn_engine.tokenizers import BOS_ID
from rnn_engine.trainer import train

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog. " * 30
VALID = "the dog sat on the cat. a mat and a log. " * 10


def test_training_report_carries_the_best_ngram_and_the_ratio():
    events = []
    tcfg = TrainConfig(steps=20, batch_size=4, bptt=16, eval_every=10, lr=0.01)
    model = train(
        ModelConfig(task="language_model", cell="gru", hidden_size=16, embedding_dim=8),
        tcfg,
        Dataset(task="language_model", train=TEXT, validation=VALID),
        on_event=events.append,
    )
    evals = [e for e in events if e.kind == "eval"]
    base = model.training["ngram_baseline"]
    assert base["smoothing"] in ("witten_bell", "kneser_ney") and 1 <= base["order"] <= 7
    for ev in evals:
        assert ev.metrics["ngram_perplexity"] == base["perplexity"]
        assert ev.metrics["perplexity_vs_ngram"] == pytest.approx(
            ev.metrics["perplexity"] / base["perplexity"]
        )
    assert (
        model.metrics["ngram_perplexity"] == base["perplexity"]
        and base["tokens"] == evals[-1].metrics["validation_items"]
    )
    # the same number from the n-gram itself, over the streams the network is validated on
    tok = model.tokenizer
    tr, va = tok.encode(TEXT), tok.encode(VALID)
    B = max(1, min(4, len(va) // 16))
    L = len(va) // B
    ng = NGramModel(base["order"], smoothing=base["smoothing"]).fit(
        np.array(tr[: (len(tr) // 4) * 4]), tok.vocab_size
    )
    nll = -sum(ng.token_log_probs([BOS_ID] + va[b * L : (b + 1) * L]).sum() for b in range(B)) / (B * L)
    assert base["perplexity"] == pytest.approx(math.exp(nll), rel=1e-12)
    others = [
        NGramModel(n, smoothing=s).fit(np.array(tr[: (len(tr) // 4) * 4]), tok.vocab_size)
        for n in range(1, 8)
        for s in ("witten_bell", "kneser_ney")
    ]
    for other in others:  # it is the best of them
        nll_o = -sum(other.token_log_probs([BOS_ID] + va[b * L : (b + 1) * L]).sum() for b in range(B)) / (
            B * L
        )
        assert nll <= nll_o + 1e-12


def test_the_baseline_can_be_switched_off():
    tcfg = TrainConfig(steps=2, batch_size=4, bptt=16, eval_every=2, ngram_baseline=False)
    model = train(
        ModelConfig(task="language_model", cell="gru", hidden_size=8, embedding_dim=4),
        tcfg,
        Dataset(task="language_model", train=TEXT, validation=VALID),
    )
    assert "ngram_perplexity" not in model.metrics and "ngram_baseline" not in model.training
