"""The model directory: names -> saved models (rnn_engine.checkpoint), with a small cache of loaded models.

Layout of `model_dir`: one directory per model (rnn_engine.modelfile), plus hidden `.jobs/` (job records and
checkpoints, server/jobs/) and `.uploads/` (UploadDataset files). Hidden entries are never listed as models.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from rnn_engine import modelfile
from rnn_engine.errors import AlreadyExists, NotFound


class ModelStore:
    """Thread-safe access to the saved models under `root`; loaded models are cached (LRU, `cache_size`)."""

    def __init__(self, root: Path | str, cache_size: int = 16) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        modelfile.cleanup_partial(self.root)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.RLock()

    def path(self, name: str) -> Path:
        """The directory of model `name` (validated; InvalidInput names the model)."""
        return modelfile.model_path(self.root, name)

    def names(self) -> list[str]:
        return modelfile.list_model_dirs(self.root)

    def exists(self, name: str) -> bool:
        return (self.path(name) / modelfile.MANIFEST).is_file()

    def _stamp(self, name: str) -> float:
        try:
            return (self.path(name) / modelfile.MANIFEST).stat().st_mtime_ns
        except FileNotFoundError:
            raise NotFound(f"model {name!r} not found", resource_type="model", resource_name=name) from None

    def get(self, name: str):
        """The loaded Model `name` (reloaded when its files changed); NotFound if there is none."""
        from rnn_engine.checkpoint import load_model

        with self._lock:
            stamp = self._stamp(name)
            hit = self._cache.get(name)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(name)
                return hit[1]
            model = load_model(self.path(name)).freeze()  # served, never trained here: keep weight copies
            self._cache[name] = (stamp, model)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return model

    def save(self, name: str, model, *, overwrite: bool = True) -> Path:
        """Save `model` as `name` atomically (AlreadyExists unless `overwrite`)."""
        from rnn_engine.checkpoint import save_model

        with self._lock:
            if not overwrite and self.exists(name):
                raise AlreadyExists(f"model {name!r} already exists")
            path = save_model(model, self.path(name))
            self._cache.pop(name, None)
            return Path(path) if path is not None else self.path(name)

    def delete(self, name: str) -> None:
        """Remove model `name` from disk and cache; NotFound if there is none."""
        with self._lock:
            path = self.path(name)
            if not path.is_dir() or path.is_symlink():
                raise NotFound(f"model {name!r} not found", resource_type="model", resource_name=name)
            self._cache.pop(name, None)
            shutil.rmtree(path)

    def info(self, name: str, history: bool = False) -> dict:
        """`Model.info()` plus the model's name; with `history`, also "history": `Model.history_summary()`
        (at most HISTORY_ROWS rows, so GetModel stays small; ListModels leaves it out)."""
        model = self.get(name)
        info = {**model.info(), "name": name}
        if history:
            info["history"] = model.history_summary()
        return info
