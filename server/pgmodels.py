"""Models in PostgreSQL (`rnn_models`, `rnn_model_files`) behind ModelStore's interface, with a local cache.

A model version is its files (manifest, weights, history: the model directory rnn_engine.checkpoint writes)
inserted in one transaction with a new version number from a sequence, so a version is visible only when
complete; a save cut short by a crash rolls back. Each replica keeps loaded models in memory (LRU) and their
files under `<cache_dir>/<name>/v<version>/`, both safe to lose. `rnn_models` NOTIFYs `name:version` on every
save and delete; the listener keeps `_current` (name -> latest version) so `get` (the Predict hot path)
touches no database while the listener is connected. When it loses the database `_current` is forgotten and
`get` asks the database again (UNAVAILABLE while it is down).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from rnn_engine import modelfile
from rnn_engine.errors import AlreadyExists, NotFound

from .pg import Database, Listener


def read_dir(directory: Path) -> dict[str, bytes]:
    """Every regular file under `directory` (relative path -> bytes)."""
    out = {}
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[path.relative_to(directory).as_posix()] = path.read_bytes()
    return out


def write_dir(directory: Path, files: dict[str, bytes]) -> Path:
    """Write `files` into `directory` atomically (a temp dir renamed into place); returns it."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        for rel, data in files.items():
            target = tmp / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ValueError(f"file: expected a relative path, got {rel!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            os.rename(tmp, directory)
        except OSError:  # another thread wrote the same version first: same content
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def insert_model(cur, name: str, files: dict[str, bytes], *, overwrite: bool = True) -> int:
    """Store a model version inside the caller's transaction; returns the new version."""
    if modelfile.MANIFEST not in files:
        raise ValueError(f"model {name!r}: expected a {modelfile.MANIFEST} among its files")
    version = cur.execute("SELECT nextval('rnn_model_version')").fetchone()[0]
    if overwrite:
        cur.execute(
            "INSERT INTO rnn_models (name, version) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET version = excluded.version, saved_at = now()",
            (name, version),
        )
    else:
        cur.execute(
            "INSERT INTO rnn_models (name, version) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
            (name, version),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"model {name!r} already exists")
    cur.execute("DELETE FROM rnn_model_files WHERE name = %s", (name,))
    cur.executemany(
        "INSERT INTO rnn_model_files (name, file, data) VALUES (%s, %s, %s)",
        [(name, rel, data) for rel, data in files.items()],
    )
    cur.execute("SELECT pg_notify('rnn_models', %s)", (f"{name}:{version}",))
    return version


class PgModelStore:
    """ModelStore's methods (names, exists, get, save, delete, info) over the database; thread-safe."""

    def __init__(self, db: Database, listener: Listener, cache_dir: Path, cache_size: int = 16) -> None:
        self.db, self.cache_size = db, cache_size
        self.cache_dir = Path(cache_dir) / ".store-cache"
        shutil.rmtree(self.cache_dir, ignore_errors=True)  # a cache from an earlier run may be stale
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._current: dict[str, int] = {}  # name -> latest version, kept true by notifications
        self._changes: dict[str, int] = {}  # name -> notifications seen (a read racing one is not trusted)
        self._epoch = 0  # listener (re)connections: a read racing one is not trusted either
        self._lock = threading.RLock()
        listener.subscribe("rnn_models", self._notified)
        listener.on_reset(self._forget)

    # ------------------------------------------------------------------------------------ notifications
    def _notified(self, payload: str) -> None:
        name, _, version = payload.rpartition(":")
        with self._lock:
            self._changes[name] = self._changes.get(name, 0) + 1
            self._current.pop(name, None)
            hit = self._cache.get(name)
            if hit is not None and str(hit[0]) != version:
                del self._cache[name]  # the old version goes at once (memory and disk)
                shutil.rmtree(self.cache_dir / name / f"v{hit[0]}", ignore_errors=True)

    def _forget(self) -> None:
        with self._lock:
            self._current.clear()
            self._epoch += 1

    # ------------------------------------------------------------------------------------------ queries
    def names(self) -> list[str]:
        with self.db.connect() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM rnn_models ORDER BY name")]

    def _version(self, name: str) -> int | None:
        with self.db.connect() as conn:
            row = conn.execute("SELECT version FROM rnn_models WHERE name = %s", (name,)).fetchone()
        return None if row is None else row[0]

    def exists(self, name: str) -> bool:
        return self._version(name) is not None

    def get(self, name: str):
        """The loaded Model `name` at its latest version; NotFound if there is none."""
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and self._current.get(name) == hit[0]:
                self._cache.move_to_end(name)
                return hit[1]
            seen = (self._changes.get(name, 0), self._epoch)
        version = self._version(name)  # outside the lock: the database may be slow
        if version is None:
            raise NotFound(f"model {name!r} not found")
        with self._lock:
            hit = self._cache.get(name)
            model = hit[1] if hit is not None and hit[0] == version else None
        if model is None:
            model = self._load(name, version)
        with self._lock:
            if (self._changes.get(name, 0), self._epoch) == seen:  # nothing notified since the read
                self._current[name] = version
            self._cache[name] = (version, model)
            self._cache.move_to_end(name)
            while len(self._cache) > self.cache_size:
                old, (v, _) = self._cache.popitem(last=False)
                shutil.rmtree(self.cache_dir / old / f"v{v}", ignore_errors=True)
        return model

    def _load(self, name: str, version: int):
        from rnn_engine.checkpoint import load_model

        directory = self.cache_dir / name / f"v{version}"
        if not (directory / modelfile.MANIFEST).is_file():
            with self.db.transaction() as cur:  # files and version read together
                row = cur.execute("SELECT version FROM rnn_models WHERE name = %s", (name,)).fetchone()
                if row is None:
                    raise NotFound(f"model {name!r} not found")
                if row[0] != version:
                    version = row[0]
                    directory = self.cache_dir / name / f"v{version}"
                files = {f: bytes(d) for f, d in cur.execute(
                    "SELECT file, data FROM rnn_model_files WHERE name = %s", (name,))}
            write_dir(directory, files)
        # served, never trained here: keep weight copies
        return load_model(directory.parent / directory.name).freeze()

    # ------------------------------------------------------------------------------------------ changes
    def save(self, name: str, model, *, overwrite: bool = True) -> int:
        """Save `model` as a new version of `name` in one transaction (AlreadyExists unless `overwrite`)."""
        from rnn_engine.checkpoint import save_model

        modelfile.validate_model_name(name)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".save-") as tmp:
            save_model(model, Path(tmp) / name)
            files = read_dir(Path(tmp) / name)
        with self.db.transaction() as cur:
            return insert_model(cur, name, files, overwrite=overwrite)

    def delete(self, name: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM rnn_models WHERE name = %s RETURNING version", (name,))
            if cur.rowcount == 0:
                raise NotFound(f"model {name!r} not found")
            cur.execute("SELECT pg_notify('rnn_models', %s)", (f"{name}:0",))

    def info(self, name: str, history: bool = False) -> dict:
        model = self.get(name)
        info = {**model.info(), "name": name}
        if history:
            info["history"] = model.history_summary()
        return info
