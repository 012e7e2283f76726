"""A real `python -m server` process for crash tests: start it, read the port it logs, kill -9 it, restart it.

The server runs in its own session, so `kill_all()` can SIGKILL it together with its training workers (what a
container or machine failure does) and teardown never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from tests.security.helpers import Stubs

REPO = Path(__file__).resolve().parents[2]


class ServerProcess:
    """`python -m server --port 0` on `model_dir`; `port` and `stubs` once it logs that it is serving."""

    def __init__(self, model_dir: Path, *extra: str, timeout: float = 60.0) -> None:
        argv = [sys.executable, "-m", "server", "--port", "0", "--metrics-port", "0", "--model-dir",
                str(model_dir), "--log-level", "INFO", *extra]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name in ("RNN_AUTH_TOKENS", "RNN_AUTH_TOKENS_FILE", "RNN_TLS_CERT", "RNN_TLS_KEY"):
            env.pop(name, None)
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self._port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or self._port is None:
            self.kill_all()
            raise RuntimeError("server did not start:\n" + "\n".join(self.lines[-30:]))
        self.port = self._port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stubs = Stubs(self.channel)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("message") == "serving":
                self._port = int(record["port"])
                self._ready.set()
        self._ready.set()  # exited before serving

    def children(self) -> list[int]:
        """Pids whose parent is the server (its training workers, and multiprocessing helpers)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        found.append(int(entry.name))
        return found

    def kill9(self) -> None:
        """SIGKILL the server process only (its workers must notice and stop by themselves)."""
        self.channel.close()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def kill_all(self) -> None:
        """SIGKILL the server and every process of its session (idempotent).

        The kill comes first: closing the channel first would cancel in-flight calls while the server still
        runs, which is another scenario than a crash (and the server could act on it before it dies).
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        with contextlib.suppress(Exception):
            self.channel.close()

    def stop(self) -> None:
        """SIGTERM (graceful drain), then SIGKILL the session if it lingers."""
        with contextlib.suppress(Exception):
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        self.kill_all()


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of `pids` is alive (zombies count as gone); returns those still alive."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def tree_digest(directory: Path) -> dict[str, str]:
    """sha256 of every regular file under `directory`, by relative path."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and not p.is_symlink()}


def start_server(servers: list, model_dir) -> ServerProcess:
    """Start a server on `model_dir` and register it with the `servers` fixture's list."""
    servers.append(ServerProcess(model_dir))
    return servers[-1]
