"""The gRPC server of rnn-service: thin servicers over rnn_engine (see docs/DESIGN.md)."""

from .app import RnnServer, create_server
from .config import ServerConfig, load_config

__all__ = ["RnnServer", "ServerConfig", "create_server", "load_config"]
