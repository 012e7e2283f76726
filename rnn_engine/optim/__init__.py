"""Optimizers (torch.optim rules) and learning-rate schedules."""

from .optimizers import *  # noqa: F403 - rnn_engine.optim keeps its old names
from .optimizers import __all__  # noqa: F401
