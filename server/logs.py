"""Structured logging: one JSON object per line on stderr (time, level, logger, message, extra fields)."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; fields passed through `extra=` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not when the handler was made (a test
    runner or a CLI harness may swap stderr and close the old one while server threads still log)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: str = "INFO") -> None:
    """Send the `rnn` loggers to stderr as JSON lines at `level` (idempotent)."""
    logger = logging.getLogger("rnn")
    logger.setLevel(level)
    if not any(getattr(h, "_rnn_json", False) for h in logger.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(JsonFormatter())
        handler._rnn_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.propagate = False
