"""Above the crossover a batch's state stays stacked between steps (StepPlan.run_streams): the same rows in
the same order are fed back without a copy; rows joined, left or reordered give the logits of the stacked
rows, compared with the unbatched kernel on an explicit stack (and with each stream run alone by 1-row steps
in the plan's default policy, up to the last bits)."""

from __future__ import annotations

import string

import numpy as np

from rnn_engine import no_grad
from rnn_engine.config import ModelConfig
from rnn_engine.generation import StepPlan
from rnn_engine.generation.plan import stack_states
from rnn_engine.model import Model
from rnn_engine.tokenizers import CharTokenizer


def _model(mode: str = "lstm") -> Model:
    return Model(ModelConfig(hidden_size=32, num_layers=2, embedding_dim=8, seed=0, cell=mode),
                 tokenizer=CharTokenizer.fit([string.printable]))


def _states(n: int, c: bool = True):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal((2, 1, 32)).astype(np.float32),
             rng.standard_normal((2, 1, 32)).astype(np.float32) if c else None) for _ in range(n)]


def test_same_rows_are_not_copied_and_changed_rows_are_gathered():
    model = _model()
    plan, ref = StepPlan(model, gemv_rows=2), StepPlan(model, gemv_rows=2)
    seen = []
    kernel = plan.kernel
    plan.kernel = lambda ids, state: (seen.append(state), kernel(ids, state))[1]
    ids = np.arange(6) + 5
    with no_grad():
        _, first = plan.run_streams(ids, _states(6))
        out = plan._stacked[0]
        _, second = plan.run_streams(ids, first)  # the same rows in order: the previous output itself
        assert seen[-1][0] is out[0] and seen[-1][1] is out[1]
        mixed = [second[3], second[0], _states(7)[6], second[5]]  # reordered, left, one joined
        logits, _ = plan.run_streams(ids[:4], mixed)
        expected, _ = ref.kernel(ids[:4], stack_states(mixed))
    np.testing.assert_array_equal(logits, expected)
    assert seen[-1][0] is not plan._stacked[0][0]


def test_below_the_crossover_nothing_is_kept_and_gru_has_no_cell_state():
    model = _model("gru")
    plan = StepPlan(model, gemv_rows=4)
    ids = np.arange(3) + 5
    with no_grad():
        _, states = plan.run_streams(ids, _states(3, c=False))  # 3 < 4: row by row
        assert plan._stacked is None
        big = states + _states(2, c=False)
        logits, out = plan.run_streams(np.arange(5) + 5, big)
        again, _ = plan.run_streams(np.arange(5) + 5, out)
        expected, _ = StepPlan(model, gemv_rows=4).kernel(np.arange(5) + 5, stack_states(out))
    np.testing.assert_array_equal(again, expected)
    assert all(c is None for _, c in out)
