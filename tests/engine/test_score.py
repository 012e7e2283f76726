"""Model.score: per-token log-likelihood and perplexity of texts under a language model, against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_engine.errors import FailedPrecondition, InvalidInput
from rnn_engine.tasks import prepare
from rnn_engine.tokenizers import BOS_ID
from tests.engine.model_cases import tiny_config, tiny_dataset, tiny_train

TEXTS = ["the cat", "a", "sat on the mat and the log"]


@pytest.fixture(scope="module")
def lm():
    model, _ = prepare(tiny_config("language_model", "lstm", dtype="float64", num_layers=2, hidden_size=6),
                       tiny_train(), tiny_dataset("language_model"))
    return model


def test_score_equals_pytorch_log_softmax_of_the_same_weights(lm):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    from tests.engine.test_model_torch import torch_modules

    mods = torch_modules(lm, "lstm", bidirectional=False)
    for text, got in zip(TEXTS, lm.score(TEXTS), strict=True):
        ids = [BOS_ID] + lm.tokenizer.encode(text)
        with torch.no_grad():
            out, _ = mods["rnn"](mods["embedding"](torch.tensor([ids])))
            log_p = torch.log_softmax(mods["head"](out), dim=-1)[0]
        want = log_p[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()
        assert got["tokens"] == ids[1:]
        np.testing.assert_allclose(got["log_probs"], want, rtol=0, atol=1e-12)
        assert got["log_likelihood"] == pytest.approx(float(want.sum()), abs=1e-12)
        assert got["perplexity"] == pytest.approx(math.exp(-want.mean()), rel=1e-12)


def test_score_includes_the_first_token_that_predict_leaves_out(lm):
    V = lm.tokenizer.vocab_size
    scored = lm.score(["the cat"])[0]
    steps = lm.predict(["the cat"], top_k=V)[0]["top_tokens"]  # step i: the distribution after token i
    for i, token in enumerate(scored["tokens"][1:]):
        p = dict(zip(steps[i]["ids"], steps[i]["probs"], strict=True))[token]
        assert scored["log_probs"][i + 1] == pytest.approx(math.log(p), abs=1e-12)
    assert len(scored["log_probs"]) == len(steps)  # one more than predict's scored tokens: the first


def test_score_is_for_language_models_and_validates_its_input(lm):
    clf, _ = prepare(tiny_config("classification"), tiny_train(), tiny_dataset("classification"))
    with pytest.raises(FailedPrecondition, match="only a language model"):
        clf.score(["abc"])
    with pytest.raises(InvalidInput, match=r"^texts\[1\]: expected a non-empty text"):
        lm.score(["a", ""])
    with pytest.raises(InvalidInput, match=r"^inputs: "):
        lm.score("not a list")
