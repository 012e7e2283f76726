"""Serving under load: continuous batching of generation, dynamic batching of Predict/PredictStream chunks,
bounded queues with back-pressure, and a per-model LRU pool that swaps models safely under in-flight calls."""

from .pool import BatchingPool
from .settings import BatchMetrics, BatchSettings

__all__ = ["BatchingPool", "BatchMetrics", "BatchSettings"]
