"""Fixtures of the crash tests: server processes started through `servers` are killed at teardown."""

from __future__ import annotations

import pytest

from .proc import ServerProcess


@pytest.fixture
def servers():
    """Start ServerProcess objects through this list (see proc.start_server); all are killed at teardown."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill_all()
