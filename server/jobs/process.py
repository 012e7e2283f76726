"""One training worker: a process running `server.jobs.worker.run_job`, and a thread reading what it reports.

The worker speaks only through a multiprocessing Queue: ("event", dict) messages, then one last word
(("done", dict), ("cancelled", message) or ("error", kind, message)). A process that dies without a last word
ends as ("crash", message with its exit code). `stop` asks the worker to checkpoint and stop.
"""

from __future__ import annotations

import queue as queue_mod
import threading
from collections.abc import Callable
from typing import Any


class WorkerProcess:
    """Runs `target(job, queue, stop)` in a process; `on_event(dict)` per event, then `on_end(outcome)`."""

    def __init__(
        self,
        ctx,
        target: Callable,
        job: dict[str, Any],
        name: str,
        on_event: Callable[[dict], None],
        on_end: Callable[[tuple], None],
    ) -> None:
        self.queue = ctx.Queue()
        self.stop = ctx.Event()
        self.process = ctx.Process(target=target, args=(job, self.queue, self.stop), daemon=True, name=name)
        self.on_event, self.on_end, self.name = on_event, on_end, name

    def start(self) -> None:
        self.process.start()
        threading.Thread(target=self._read, daemon=True, name=f"{self.name}-reader").start()

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def join_or_kill(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the process to end, then kill it."""
        self.process.join(max(0.0, timeout))
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)

    def _next(self) -> tuple | None:
        """The next message, or None once the process has died with nothing left to read."""
        while True:
            try:
                return self.queue.get(timeout=0.2)
            except queue_mod.Empty:
                if not self.process.is_alive():
                    try:
                        return self.queue.get(timeout=0.5)  # a last message may still be in the pipe
                    except queue_mod.Empty:
                        return None

    def _read(self) -> None:
        while True:
            msg = self._next()
            if msg is None:
                code = self.process.exitcode
                outcome: tuple = (
                    "crash",
                    f"worker process exited with code {code} without reporting a result",
                )
                break
            if msg[0] != "event":
                outcome = msg
                break
            self.on_event(msg[1])
        self.process.join(timeout=5)
        self.on_end(outcome)
