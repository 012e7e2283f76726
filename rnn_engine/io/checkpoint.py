"""Saving and loading models (and training checkpoints) as model directories (modelfile.py: npz + JSON).

Manifest keys: "kind" ("rnn-service-model"), "task", "config" (ModelConfig), "tokenizer" (to_dict or None),
"labels", "norm" (forecasting mean/std per feature), "num_features", "training" (TrainConfig and run facts),
"metrics", "created", "trained", and for training checkpoints "checkpoint" (trainer state) plus the names of
the extra arrays (optimizer buffers, carried LM state). Loading rebuilds the network from the manifest and
checks every array's name, shape and dtype against it; anything else is `IncompatibleModel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backend import xp
from ..config import ModelConfig
from ..data.tokenizers import Tokenizer
from ..errors import EngineError, IncompatibleModel
from ..model import Model
from .modelfile import load_model_dir, save_model_dir

KIND = "rnn-service-model"


def model_manifest(model: Model) -> dict[str, Any]:
    return {
        "kind": KIND,
        "task": model.task,
        "config": model.config.to_dict(),
        "tokenizer": model.tokenizer.to_dict() if model.tokenizer else None,
        "labels": model.labels,
        "norm": model.norm,
        "num_features": model.num_features,
        "training": model.training,
        "metrics": model.metrics,
        "created": model.created,
        "trained": model.trained,
    }


def save_model(
    model: Model, directory: Path | str, *, extra_arrays: dict | None = None, checkpoint: dict | None = None
) -> Path:
    """Atomically write `model` to `directory` (replacing what was there only once everything is written)."""
    if not isinstance(model, Model):
        raise IncompatibleModel(f"model: expected a Model, got {type(model).__name__}")
    arrays = {k: v.copy() for k, v in model.params.items()}
    manifest = model_manifest(model)
    if extra_arrays:
        arrays.update(extra_arrays)
        manifest["extra_arrays"] = {k: [list(v.shape), str(v.dtype)] for k, v in extra_arrays.items()}
    if checkpoint is not None:
        manifest["checkpoint"] = checkpoint
    return save_model_dir(directory, arrays, manifest, model.history)


def _model_from_manifest(manifest: dict, what: str) -> Model:
    if manifest.get("kind") != KIND:
        raise IncompatibleModel(f"{what}: not an rnn-service model (kind {manifest.get('kind')!r})")
    try:
        cfg = ModelConfig.from_dict(manifest["config"])
        tok = Tokenizer.from_dict(manifest["tokenizer"]) if manifest.get("tokenizer") else None
        model = Model(
            cfg,
            tokenizer=tok,
            labels=manifest.get("labels"),
            norm=manifest.get("norm"),
            num_features=int(manifest.get("num_features", 1)),
        )
    except (EngineError, KeyError, TypeError, ValueError) as exc:
        raise IncompatibleModel(f"{what}: manifest does not describe a valid model: {exc}") from None
    model.training = dict(manifest.get("training") or {})
    model.metrics = dict(manifest.get("metrics") or {})
    model.created = str(manifest.get("created", model.created))
    model.trained = bool(manifest.get("trained", False))
    return model


def load_model(directory: Path | str, task: str | None = None, *, with_extras: bool = False):
    """Load a model directory; with `task`, a model of another kind is IncompatibleModel.

    Returns the Model, or (Model, extra arrays, manifest) when `with_extras` (training checkpoints).
    """
    directory = Path(directory)
    what = f"model {directory.name!r}"
    arrays, manifest, history = load_model_dir(directory)
    model = _model_from_manifest(manifest, what)
    if task is not None and model.task != task:
        raise IncompatibleModel(f"{what}: expected a {task} model, got a {model.task} model")
    extras_spec = manifest.get("extra_arrays") or {}
    expected = {k: (tuple(p.shape), p.dtype) for k, p in model.params.items()}
    expected.update({k: (tuple(s), xp.dtype(d)) for k, (s, d) in extras_spec.items()})
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise IncompatibleModel(
            f"{what}: arrays do not match a {model.task} model as configured: "
            f"missing {missing[:8]}, unexpected {extra[:8]}"
        )
    for k, (shape, dtype) in expected.items():
        if arrays[k].shape != shape or arrays[k].dtype != dtype:
            raise IncompatibleModel(
                f"{what}: array {k!r}: expected {dtype} {shape}, got {arrays[k].dtype} {arrays[k].shape}"
            )
    try:
        model.net.load_arrays({k: arrays[k] for k in model.params})
    except EngineError as exc:
        raise IncompatibleModel(f"{what}: {exc}") from None
    model.history = list(history)
    if with_extras:
        return model, {k: arrays[k] for k in extras_spec}, manifest
    return model
