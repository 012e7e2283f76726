"""`rnn-server` / `python -m server`: parse flags and RNN_* variables, serve until SIGTERM, then drain."""

from __future__ import annotations

import errno
import logging
import signal
import sys
import threading

from . import logs
from .app import create_server
from .config import ConfigError, load_config
from .threads import limit_blas_threads

log = logging.getLogger("rnn.server")


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ConfigError as exc:
        print(f"rnn-server: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    blas_threads = limit_blas_threads(config.blas_threads)  # process-wide, before any model work
    try:
        server, port = create_server(config)
    except (ValueError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:  # only the metrics port binds here
            exc = (f"cannot serve metrics on {config.metrics_host or config.host}:{config.metrics_port}: "
                   "address already in use; "
                   f"choose another with --metrics-port / RNN_METRICS_PORT, or 0 to turn metrics off")
        print(f"rnn-server: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # grpc's bind failure (port taken); anything else keeps its traceback
        if "Failed to bind" not in str(exc):
            raise
        print(f"rnn-server: cannot listen on {config.host}:{config.port}: is another server using the port? "
              f"Stop it, or choose another with --port / RNN_PORT (0 picks a free one)", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())
    server.start()
    log.info("serving", extra={"host": config.host, "port": port, "metrics_port": server.metrics_port,
                               "blas_threads": blas_threads})
    while not stop.wait(0.5):
        pass
    log.info("draining", extra={"grace_seconds": config.shutdown_grace})
    server.drain(config.shutdown_grace)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
