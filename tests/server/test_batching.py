"""server.batching without gRPC: continuous and dynamic batching, back-pressure, deadlines, LRU, swap."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from rnn_engine.batched import exact_min_rows
from rnn_engine.config import GenerationConfig, ModelConfig
from rnn_engine.errors import Cancelled, NotFound
from rnn_engine.generate import GeneratedToken
from rnn_engine.model import Model
from rnn_engine.tokenizers import CharTokenizer
from server.batching import BatchingPool, BatchSettings
from server.batching.dynamic import DynamicBatcher, run_chunks, run_predict
from server.batching.engine_process import ProcessGenerationScheduler
from server.batching.generation import GenerationScheduler
from server.errors import ServiceError
from server.store import ModelStore

TEXT = "the quick brown fox jumps over the lazy dog. THE END!\n"


def lm(seed: int = 0, task: str = "language_model", labels=None) -> Model:
    cfg = ModelConfig(task=task, hidden_size=40, num_layers=2, embedding_dim=12, seed=seed)
    return Model(cfg, tokenizer=CharTokenizer.fit([TEXT]), labels=labels)


def ids_of(records) -> list[int]:
    return [r.id for r in records if isinstance(r, GeneratedToken)]


def sample(metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def wait_until(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.002)


CONFIGS = [GenerationConfig(max_new_tokens=30, temperature=t, top_k=k, top_p=p, repetition_penalty=r, seed=s)
           for t, k, p, r, s in [(1.0, 0, 1.0, 1.0, 7), (0.0, 0, 1.0, 1.0, 1), (0.7, 5, 1.0, 1.0, 2),
                                 (1.2, 0, 0.9, 1.0, 3), (1.0, 0, 1.0, 1.5, 4), (0.5, 3, 0.8, 1.2, 5),
                                 (2.0, 0, 1.0, 1.0, 6), (1.0, 10, 1.0, 1.0, 8), (0.9, 0, 0.95, 1.1, 9)]]
PROMPTS = ["the ", "", "qu", "dog", "fox j", "T", "lazy", "b", "over the "]


def crossover_16() -> None:
    """Run in a generation process (its initializer): the GEMV/GEMM crossover the test sets in this one."""
    from rnn_engine.generation import plan

    plan.gemv_crossover = lambda plan_, max_rows: 16


@pytest.fixture(params=["thread", "process"])
def make_scheduler(request):
    """make(model, settings, initializer=None): the in-process GenerationScheduler, or the one stepping its
    batch in a child process (closed at the end of the test)."""
    made = []

    def make(model, settings, initializer=None):
        if request.param == "thread":
            return GenerationScheduler(model, "m", settings)
        made.append(ProcessGenerationScheduler(model, "m", settings, initializer=initializer))
        return made[-1]

    yield make
    for sched in made:
        sched.close()


@pytest.mark.parametrize("deterministic", [True, False])
def test_a_request_gets_the_same_tokens_alone_and_among_eight_others(deterministic, monkeypatch,
                                                                      make_scheduler):
    from rnn_engine.generation import plan as batched

    model = lm()
    if not deterministic:  # by default: equal in any batch below the GEMV/GEMM crossover (here set to 16)
        monkeypatch.setattr(batched, "gemv_crossover", lambda plan, max_rows: 16)
    sched = make_scheduler(model, BatchSettings(max_batch_size=16, deterministic=deterministic),
                           None if deterministic else crossover_16)
    alone = list(sched.submit(PROMPTS[0], CONFIGS[0]))
    streams = [sched.submit(p, c) for p, c in zip(PROMPTS, CONFIGS, strict=True)]  # all join one batch
    together = [list(s) for s in streams]
    assert together[0] == alone
    for p, c, got in zip(PROMPTS, CONFIGS, together, strict=True):
        reference = list(model.generate(p, c, deterministic=deterministic))
        assert ids_of(got) == ids_of(reference)
        assert got[-1] == reference[-1]  # the GenerationEnd: reason, counts, text
    steps = sample(sched.metrics, "rnn_batch_size_count", kind="generate")
    assert sample(sched.metrics, "rnn_batch_size_sum", kind="generate") > steps  # rows really ran together


def test_the_scheduler_copies_the_weights_once_not_per_step(monkeypatch):
    from rnn_engine.generation import plan as batched

    built = []
    original = batched.StepPlan.__init__

    def counting(self, model, *args, **kwargs):
        built.append(model)
        original(self, model, *args, **kwargs)

    model = lm()
    exact_min_rows(model, 4)  # probed (with a plan of its own) and cached before counting
    monkeypatch.setattr(batched.StepPlan, "__init__", counting)
    sched = GenerationScheduler(model, "m", BatchSettings(max_batch_size=4))
    streams = [sched.submit(p, GenerationConfig(max_new_tokens=20, seed=i))
               for i, p in enumerate(PROMPTS[:3])]
    assert all(len(ids_of(list(s))) > 0 for s in streams)
    assert len(built) == 1  # one StepPlan for the scheduler's model, reused by every step


def test_cancelling_one_stream_leaves_the_others_correct(make_scheduler):
    model = lm()
    sched = make_scheduler(model, BatchSettings(max_batch_size=16, max_backlog=2))
    streams = [sched.submit(p, c) for p, c in zip(PROMPTS, CONFIGS, strict=True)]
    victim = streams[3]
    next(victim)
    victim.cancel()
    with pytest.raises(Cancelled):
        list(victim)
    for i, (p, c) in enumerate(zip(PROMPTS, CONFIGS, strict=True)):
        if i != 3:
            assert ids_of(list(streams[i])) == ids_of(model.generate(p, c))
    wait_until(lambda: sched.running() == 0)


def test_a_slow_reader_does_not_hold_up_the_others(make_scheduler):
    sched = make_scheduler(lm(), BatchSettings(max_batch_size=4, max_backlog=2))
    slow = sched.submit("the", GenerationConfig(max_new_tokens=50, seed=1))
    fast = list(sched.submit("dog", GenerationConfig(max_new_tokens=50, seed=2, temperature=0.0)))
    assert fast[-1].generated_tokens == 50
    assert slow.backlog() <= 3  # paused at its backlog limit instead of running ahead (or blocking)
    assert len(list(slow)) >= 2


def test_a_full_queue_answers_resource_exhausted_naming_the_limit_at_once(make_scheduler):
    sched = make_scheduler(lm(), BatchSettings(max_batch_size=1, queue_depth=1, max_backlog=1))
    running = sched.submit("the", GenerationConfig(max_new_tokens=200, seed=1))  # paused: nobody reads it
    wait_until(lambda: sched.in_batch() == 1)
    waiting = sched.submit("a", GenerationConfig(max_new_tokens=3, seed=2))
    start = time.monotonic()
    with pytest.raises(ServiceError) as err:
        sched.submit("b", GenerationConfig(max_new_tokens=3, seed=3))
    assert time.monotonic() - start < 1.0
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue_depth" in err.value.message
    assert sample(sched.metrics, "rnn_batch_rejected_total", kind="generate") == 1
    running.cancel()
    want = sched.model.generate("a", GenerationConfig(max_new_tokens=3, seed=2))
    assert ids_of(list(waiting)) == ids_of(want)


def test_a_deadline_passing_in_the_queue_ends_the_call(make_scheduler):
    sched = make_scheduler(lm(), BatchSettings(max_batch_size=1, queue_depth=4, max_backlog=1))
    running = sched.submit("the", GenerationConfig(max_new_tokens=200, seed=1))
    wait_until(lambda: sched.in_batch() == 1)
    late = sched.submit("a", GenerationConfig(max_new_tokens=3), deadline=time.monotonic() + 0.05)
    with pytest.raises(ServiceError) as err:
        next(late)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    running.cancel()


def test_invalid_settings_raise_before_anything_is_queued(make_scheduler):
    sched = make_scheduler(lm(), BatchSettings())
    with pytest.raises(Exception, match="temperature"):
        sched.submit("a", GenerationConfig(temperature=-1.0))
    assert sched.running() == 0


# ------------------------------------------------------------------------------------------ Predict
def call_together(fn, args_list):
    """Run fn(*args) for every args at once; results in order (exceptions re-raised)."""
    out: list = [None] * len(args_list)
    barrier = threading.Barrier(len(args_list))

    def run(i, args):
        barrier.wait()
        try:
            out[i] = fn(*args)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def assert_same_prediction(got: dict, want: dict) -> None:
    """Token ids / labels identical; probabilities equal up to float32 rounding."""
    assert got.keys() == want.keys()
    if "labels" in got:
        assert got["labels"] == want["labels"]
        np.testing.assert_allclose(got["probs"], want["probs"], rtol=1e-5)
    else:
        assert got["tokens"] == want["tokens"]
        for g, w in zip(got["top_tokens"], want["top_tokens"], strict=True):
            assert g["ids"] == w["ids"]
            np.testing.assert_allclose(g["probs"], w["probs"], rtol=1e-5)


@pytest.mark.parametrize("task", ["language_model", "classification"])
def test_predict_calls_within_the_window_run_as_one_batch_with_unbatched_results(task):
    model = lm(task=task, labels=["a", "b", "c"] if task == "classification" else None)
    settings = BatchSettings(window_ms=1000, max_batch_size=8)  # closes when all 8 sequences are in
    batcher = DynamicBatcher(model, "m", "predict", run_predict, settings)
    texts = [["the"], ["quick brown", "fox"], ["jumps over the lazy dog"], ["a"], ["THE END", "x", "yz"]]
    got = call_together(lambda t: batcher.call(t, 2)[0], [(t,) for t in texts])
    assert sample(batcher.metrics, "rnn_batch_size_count", kind="predict") == 1  # one batch ...
    assert sample(batcher.metrics, "rnn_batch_size_sum", kind="predict") == 8  # ... of all 8 sequences
    for t, results in zip(texts, got, strict=True):
        alone = run_predict(model, t, None, 2, exact_min_rows(model, 64, "forward"))[0]
        for r, a, want in zip(results, alone, model.predict(t, top_k=2), strict=True):
            assert_same_prediction(r, a)  # what the call gives when it runs on its own ...
            assert_same_prediction(r, want)  # ... and through Model.predict


def test_predict_queue_full_is_resource_exhausted_and_deadlines_are_kept():
    batcher = DynamicBatcher(lm(), "m", "predict", run_predict,
                             BatchSettings(window_ms=1000, max_batch_size=64, queue_depth=1))
    first = threading.Thread(target=batcher.call, args=(["the"],))
    first.start()
    wait_until(lambda: batcher.waiting() == 1)
    with pytest.raises(ServiceError) as err:
        batcher.call(["dog"])
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue_depth" in err.value.message
    first.join()
    slow = DynamicBatcher(lm(), "m", "predict", run_predict, BatchSettings(window_ms=500))
    start = time.monotonic()
    with pytest.raises(ServiceError) as err:
        slow.call(["the"], deadline=time.monotonic() + 0.05)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - start < 0.45


def test_predict_stream_chunks_of_different_sequences_step_together_with_unbatched_results():
    model = lm()
    settings = BatchSettings(window_ms=1000, max_batch_size=4)  # closes when the 4 chunks are in
    batcher = DynamicBatcher(model, "m", "predict_stream", run_chunks, settings)
    chunks = [["the ", "quick"], ["fox", " jumps over"], ["a", "b"], ["lazy dog", "."]]
    states = [model.initial_state(1) for _ in chunks]
    refs = [model.initial_state(1) for _ in chunks]
    for step in range(2):
        got = call_together(lambda c, s: batcher.call([c], 1, [s]),
                            [(c[step], s) for c, s in zip(chunks, states, strict=True)])
        for i, (results, new_states) in enumerate(got):
            want, refs[i] = model.predict_chunk([chunks[i][step]], refs[i])
            assert_same_prediction(results[0], want[0])
            states[i] = new_states[0]
    assert sample(batcher.metrics, "rnn_batch_size_sum", kind="predict_stream") == 8


# ------------------------------------------------------------------------------------------ pool
def test_pool_keeps_the_least_recently_used_models_only():
    pool = BatchingPool(BatchSettings(), max_models=2)
    models = {n: lm(seed=i) for i, n in enumerate("abc")}
    for name in ("a", "b", "a", "c"):
        pool.predict(name, models[name], ["the"])
    assert pool.loaded() == ["a", "c"]


def test_swapped_model_in_flight_calls_finish_on_old_weights_new_calls_see_new(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", lm(seed=1))
    pool = BatchingPool(BatchSettings(max_backlog=1), latest=store.get)
    cfg = GenerationConfig(max_new_tokens=40, seed=3)
    old = store.get("m")
    in_flight = pool.generate("m", old, "the", cfg)
    first = next(in_flight)  # started on the old model, then paused (backlog 1) mid-generation
    time.sleep(0.02)
    store.save("m", lm(seed=2))  # retrained: same name, new weights
    new = store.get("m")
    assert new is not old
    assert ids_of(list(pool.generate("m", new, "the", cfg))) == ids_of(lm(seed=2).generate("the", cfg))
    assert ids_of([first, *in_flight]) == ids_of(lm(seed=1).generate("the", cfg))
    another = pool.generate("m", new, "dog", cfg)
    next(another)
    store.delete("m")
    with pytest.raises(NotFound):
        store.get("m")
    assert ids_of(list(another)) == ids_of(lm(seed=2).generate("dog", cfg))[1:]


def test_batching_flags_reach_the_settings_and_bad_values_name_the_flag():
    from server.config import ConfigError, load_config

    settings = BatchSettings.from_config(load_config(
        ["--no-batching", "--batch-max-size", "8", "--batch-window-ms", "0.5", "--queue-depth", "3"], env={}))
    assert settings == BatchSettings(enabled=False, max_batch_size=8, window_ms=0.5, queue_depth=3,
                                     process=True)  # the server's default: the generation process
    assert BatchSettings.from_config(load_config([], env={"RNN_BATCHING": "1"})).enabled
    assert BatchSettings.from_config(load_config(["--generation-process"], env={})).process
    assert not BatchSettings.from_config(load_config(["--no-generation-process"], env={})).process
    assert BatchSettings.from_config(load_config([], env={"RNN_GENERATION_PROCESS": "yes"})).process
    assert not BatchSettings.from_config(load_config([], env={"RNN_GENERATION_PROCESS": "0"})).process
    bad = ((["--queue-depth", "0"], "queue_depth"), (["--batch-window-ms", "-1"], "batch_window_ms"),
           (["--batch-max-size", "x"], "batch_max_size"))
    for argv, name in bad:
        with pytest.raises(ConfigError, match=name):
            load_config(argv, env={})


def test_a_call_with_a_stale_model_does_not_evict_the_entry_of_the_new_one():
    old, new = lm(seed=1), lm(seed=2)
    pool = BatchingPool(BatchSettings(), latest=lambda name: new)
    pool.predict("m", new, ["the"])
    kept = pool.entry("m", new)
    cfg = GenerationConfig(max_new_tokens=10, seed=1)
    assert ids_of(list(pool.generate("m", old, "a", cfg))) == ids_of(old.generate("a", cfg))  # old weights
    assert pool.entry("m", new) is kept


def test_the_store_serves_frozen_models_with_the_unfrozen_predictions(tmp_path):
    store = ModelStore(tmp_path)
    store.save("m", lm(seed=4))
    served = store.get("m")
    assert served.net.rnn.frozen
    texts = ["the quick brown fox jumps over", "lazy dog"] * 20  # T*B over the copying threshold
    assert served.predict(texts, top_k=3) == lm(seed=4).predict(texts, top_k=3)


@pytest.mark.parametrize("batching,process", [(True, False), (True, True), (False, False)])
def test_the_summary_names_a_stop_sequence_that_ends_inside_a_word_token(batching, process):
    from rnn_engine.tokenizers import WordTokenizer
    from server.predict_io import summary_to_pb

    tok = WordTokenizer.fit(["the cat sat on the mat"])
    model = Model(ModelConfig(hidden_size=16, num_layers=1, embedding_dim=8, seed=0), tokenizer=tok)
    model.params["head.bias"][tok.encode("mat")[0]] = 100.0  # greedy: " mat" ("ma" ends inside it)
    pool = BatchingPool(BatchSettings(enabled=batching, process=process))
    records = list(pool.generate("w", model, "the", GenerationConfig(max_new_tokens=5, temperature=0.0,
                                                                      stop=["ma"])))
    summary = summary_to_pb(records[-1]).summary
    assert (summary.stop_sequence, summary.text, summary.generated_tokens) == ("ma", " mat", 1)


def test_the_window_never_delays_a_caller_alone():
    batcher = DynamicBatcher(lm(), "m", "predict", run_predict, BatchSettings(window_ms=1000))
    batcher.call(["the"])  # the first batch has no history: it waits for its window
    start = time.monotonic()
    for text in ("quick", "brown", "fox"):  # then one caller after another: each runs at once
        batcher.call([text])
    assert time.monotonic() - start < 1.0  # three 1000 ms windows would take 3 s
    assert sample(batcher.metrics, "rnn_batch_size_count", kind="predict") == 4


def test_predict_pads_a_lone_call_only_when_deterministic():
    from server.batching.dynamic import predict_rows

    model = lm()
    assert predict_rows(model, BatchSettings()) == 1  # the 1-row kernel
    assert predict_rows(model, BatchSettings(deterministic=True)) == exact_min_rows(model, 64, "forward")


def test_the_generation_servicer_tells_records_apart_by_type_not_hasattr():
    import ast
    from pathlib import Path

    import server.servicers.inference as inference

    tree = ast.parse(Path(inference.__file__).read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "hasattr"]
    assert calls == []
    source = Path(inference.__file__).read_text(encoding="utf-8")
    assert "isinstance(record, GenerationEnd)" in source and "generation_records(" in source
