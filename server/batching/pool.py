"""The batching front door: per loaded model a generation scheduler and two dynamic batchers, LRU-bounded.

Servicers call `generate`, `predict` and `predict_chunk` with the model object they got from the model store.
Entries are keyed by model name and hold that object: when the store hands out a new object for a name (the
model was retrained or replaced), the next call builds a fresh entry and the old one is dropped, so calls
already running finish on the old weights while new calls use the new model; a deleted model is NOT_FOUND in
the store before it gets here. Dropped entries' worker threads exit once their last call is done. At most
`max_models` entries are kept (least recently used dropped first). With batching off every call runs alone.
With `process` (--generation-process) each entry's generation batch steps in a child process of its own
(engine_process.py), which exits once its dropped entry's last stream has ended.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from rnn_engine.config import GenerationConfig
from rnn_engine.generation.request import can_batch

from .dynamic import DynamicBatcher, predict_rows, run_chunks, run_predict
from .engine_process import ProcessGenerationScheduler
from .generation import GenerationScheduler
from .settings import BatchMetrics, BatchSettings


class _Entry:
    def __init__(self, model, name: str, settings: BatchSettings, metrics: BatchMetrics) -> None:
        self.model = model
        scheduler = ProcessGenerationScheduler if settings.process else GenerationScheduler
        self.generation = scheduler(model, name, settings, metrics)
        self.predict = DynamicBatcher(model, name, "predict", run_predict, settings, metrics)
        self.chunks = DynamicBatcher(model, name, "predict_stream", run_chunks, settings, metrics)


class BatchingPool:
    """Batching for every model the server serves (see the module docstring)."""

    def __init__(self, settings: BatchSettings | None = None, registry: CollectorRegistry | None = None,
                 max_models: int = 16, latest: Callable[[str], Any] | None = None) -> None:
        if isinstance(max_models, bool) or not isinstance(max_models, int) or max_models < 1:
            raise ValueError(f"max_models: expected an int >= 1, got {max_models!r}")
        self.settings = settings or BatchSettings()
        self.metrics = BatchMetrics(registry)
        self.max_models = max_models
        self.latest = latest  # name -> the current model object (ModelStore.get), to tell old from new
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def entry(self, name: str, model) -> _Entry:
        """The entry serving `model` under `name`: it replaces one serving another object, unless that one
        holds the latest model and `model` is a stale one (a call that looked it up just before a swap),
        which then gets an entry of its own that is not kept."""
        with self._lock:
            current = self._entries.get(name)
            if current is not None and current.model is model:
                self._entries.move_to_end(name)
                return current
        if current is not None and self._is_latest(name, current.model):
            return _Entry(model, name, self.settings, self.metrics)
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.model is not model:
                entry = _Entry(model, name, self.settings, self.metrics)
                self._entries[name] = entry
            self._entries.move_to_end(name)
            while len(self._entries) > self.max_models:
                self._entries.popitem(last=False)
            return entry

    def loaded(self) -> list[str]:
        """Names with an entry, least recently used first."""
        with self._lock:
            return list(self._entries)

    def forget(self, name: str) -> None:
        """Drop the entry of `name` (its running calls finish)."""
        with self._lock:
            self._entries.pop(name, None)

    # ------------------------------------------------------------------------------------------ calls
    def generate(self, name: str, model, prompt: Any, cfg: GenerationConfig,
                 should_stop: Callable[[], bool] | None = None, deadline: float | None = None) -> Iterator:
        """Records of `model.generate(prompt, cfg, should_stop)`, stepped with the model's other streams."""
        if not self.settings.enabled or not can_batch(model, cfg):
            return model.generate(prompt, cfg, should_stop=should_stop,
                                  deterministic=self.settings.deterministic)
        return self.entry(name, model).generation.submit(prompt, cfg, should_stop, deadline)

    def predict(self, name: str, model, inputs: list, top_k: int = 1, deadline: float | None = None) -> list:
        """`model.predict(inputs, top_k)`, run together with other calls arriving within the window."""
        if not self.settings.enabled:
            return run_predict(model, inputs, None, top_k, predict_rows(model, self.settings))[0]
        results, _ = self.entry(name, model).predict.call(inputs, top_k, None, deadline)
        return results

    def predict_chunk(self, name: str, model, chunk: Any, state: dict, top_k: int = 1,
                      deadline: float | None = None) -> tuple[dict, dict]:
        """(result, new state) of one PredictStream sequence's chunk, stepped with other sequences' chunks.

        A sequence started on a model that has since been replaced keeps its own (old) model (see `entry`).
        """
        if self.settings.enabled:
            results, states = self.entry(name, model).chunks.call([chunk], top_k, [state], deadline)
            return results[0], states[0]
        results, new = model.predict_chunk([chunk], state, top_k=top_k)
        return results[0], new

    def _is_latest(self, name: str, model) -> bool:
        if self.latest is None:
            return False
        try:
            return self.latest(name) is model
        except Exception:  # noqa: BLE001 - deleted or unreadable: the sequence keeps its own model
            return False
