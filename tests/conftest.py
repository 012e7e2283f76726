"""Fixtures shared by the whole suite; package-specific ones live next to their tests."""

from __future__ import annotations

import numpy as np
import pytest


# ------------------------------------------------------------------------------------------------ randomness
@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, fixed-seed generator per test: tests never share or depend on global random state."""
    return np.random.default_rng(20261127)
