"""Text and data: tokenizers, dataset readers, the built-in corpus."""

from .readers import *  # noqa: F403 - rnn_engine.data keeps its old names (the readers)
