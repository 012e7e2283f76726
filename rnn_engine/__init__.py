"""rnn_engine: RNN, LSTM and GRU in pure NumPy with hand-derived backpropagation through time."""

import importlib
import importlib.abc
import importlib.util
import sys

# The modules that moved into sub-packages stay importable at their old paths (rnn_engine.tokenizers is
# rnn_engine.data.tokenizers, the same module object), so existing code and the README's imports keep working.
MOVED = {
    "modules": "nn.modules", "init": "nn.init", "losses": "nn.losses",
    "recurrent": "nn.recurrent", "cells": "nn.kernels", "columns": "nn.kernels.columns",
    "schedules": "optim.schedules",
    "tokenizers": "data.tokenizers", "corpus": "data.corpus",
    "modelfile": "io.modelfile", "checkpoint": "io.checkpoint", "filelock": "io.filelock",
    "trainer": "training.trainer", "tasks": "training.tasks",
    "generate": "generation", "batched": "generation.plan", "batched_sampler": "generation.request",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `rnn_engine.<old name>` and hands back the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.rpartition(".")
        if prefix != __name__ or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module):
        module.__spec__ = importlib.util.find_spec(module.__name__)  # the import system set the alias's


sys.meta_path.insert(0, _MovedModules())  # before any other finder of an installed copy

from .backend import no_grad  # noqa: E402
from .errors import EngineError, InvalidInput  # noqa: E402
from .nn.recurrent import GRU, LSTM, RNN  # noqa: E402

__all__ = ["RNN", "LSTM", "GRU", "no_grad", "EngineError", "InvalidInput"]
