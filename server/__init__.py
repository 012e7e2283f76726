"""The gRPC server of rnn-service: thin servicers over rnn_engine (see docs/DESIGN.md).

Exports are loaded lazily, so a training worker process importing `server.jobs.worker` does not pay for grpc.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RnnServer", "ServerConfig", "create_server", "load_config"]


def __getattr__(name: str) -> Any:
    if name in ("RnnServer", "create_server"):
        from . import app

        return getattr(app, name)
    if name in ("ServerConfig", "load_config"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'server' has no attribute {name!r}")
