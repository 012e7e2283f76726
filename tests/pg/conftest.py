"""A throwaway PostgreSQL cluster for the PostgreSQL-store tests, and rnn-server / rnn-worker processes on it.

`postgres` (session): `initdb` into a temporary directory and `pg_ctl start` on a free port on 127.0.0.1
(as the `postgres` user when the tests run as root: PostgreSQL refuses to run as root), removed at the end.
`pg_url` (per test): a fresh database on it. Nothing here skips: a machine without PostgreSQL fails the tests
(.ci/run installs Debian's `postgresql` package).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest

from tests.crash.proc import REPO, ServerProcess


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rnn-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.root, "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "rnn", "--no-sync", "-E", "UTF8")
        self.start()

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200")
        log = str(self.root / "log")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://rnn@127.0.0.1:{self.port}/{db}"

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    cluster = Cluster()
    yield cluster
    cluster.remove()


@pytest.fixture
def pg_url(postgres) -> str:
    name = "t_" + secrets.token_hex(5)
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.url(name)


class WorkerProcess:
    """`python -m server.jobs.worker --store URL`, in its own session (kill -9 takes its trainers too)."""

    def __init__(self, url: str, *extra: str, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.jobs.worker", "--store", url, *extra], cwd=REPO, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        self.id: str | None = None
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                if line.startswith("rnn-worker ") and " ready " in line:
                    self.id = line.split()[1]
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.id is None:
            self.kill9()
            raise RuntimeError("rnn-worker did not start:\n" + "\n".join(self.lines[-30:]))

    def kill9(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@pytest.fixture
def procs(tmp_path):
    """Server and worker processes started through `procs.server(...)` / `procs.worker(...)`; killed after."""

    class Procs:
        def __init__(self) -> None:
            self.started: list = []

        def server(self, url: str, model_dir: Path, *extra: str) -> ServerProcess:
            self.started.append(ServerProcess(model_dir, "--store", url, *extra))
            return self.started[-1]

        def worker(self, url: str, *extra: str) -> WorkerProcess:
            work = tmp_path / f"worker-{len(self.started)}"  # scratch left by a kill -9 goes with tmp_path
            work.mkdir()
            self.started.append(WorkerProcess(url, "--work-dir", str(work), *extra))
            return self.started[-1]

    p = Procs()
    yield p
    for proc in p.started:
        if isinstance(proc, ServerProcess):
            proc.kill_all()
        else:
            proc.kill9()
