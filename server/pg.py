"""The PostgreSQL store (`--store` / `RNN_STORE` = postgresql://...): pool, schema migrations, LISTEN/NOTIFY.

Every replica and every `rnn-worker` connects to the same database, the source of truth for models, job
records and events, checkpoints, cancellation requests and uploads (server/pgmodels.py,
server/jobs/postgres.py, server/jobs/pgworker.py). Nothing is shared on disk.

- `Database`: a psycopg 3 connection pool; `db.connect()` (autocommit) and `db.transaction()` turn a lost
  database into `ServiceError(UNAVAILABLE)` naming RNN_STORE, so calls that need it fail with UNAVAILABLE
  (never INTERNAL) and succeed again once it is back (the pool checks connections before handing them out).
- `migrate`: schema versions in `rnn_schema_migrations`, applied at start-up under an advisory lock (replicas
  starting together apply each once); a database of a newer version than this code is refused.
- `Listener`: one connection per process that LISTENs on the channels and calls subscribers; when it loses
  the database it calls the `on_reset` callbacks (caches forget what notifications kept valid) and reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import psycopg
import psycopg_pool
from psycopg import conninfo

from .errors import ServiceError

log = logging.getLogger("rnn.server.pg")
SETTING = "--store / RNN_STORE"
CHANNELS = ("rnn_models", "rnn_events", "rnn_cancel", "rnn_queue")

MIGRATIONS: list[str] = [
    # 1: models, jobs, events, checkpoints, uploads
    """
    CREATE SEQUENCE rnn_model_version;
    CREATE TABLE rnn_models (
        name text PRIMARY KEY,
        version bigint NOT NULL,
        saved_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE rnn_model_files (
        name text NOT NULL REFERENCES rnn_models (name) ON DELETE CASCADE,
        file text NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (name, file)
    );
    CREATE TABLE rnn_jobs (
        job_id text PRIMARY KEY,
        model text NOT NULL,
        state text NOT NULL,
        record jsonb NOT NULL,
        created double precision NOT NULL,
        data bytea,
        resume boolean NOT NULL DEFAULT false,
        lease_owner text,
        lease_expires timestamptz,
        cancel_requested boolean NOT NULL DEFAULT false
    );
    CREATE INDEX rnn_jobs_queued ON rnn_jobs (created) WHERE state = 'QUEUED';
    CREATE INDEX rnn_jobs_running ON rnn_jobs (lease_expires) WHERE state = 'RUNNING';
    CREATE UNIQUE INDEX rnn_jobs_one_active_per_model ON rnn_jobs (model)
        WHERE state IN ('QUEUED', 'RUNNING');
    CREATE TABLE rnn_job_events (
        job_id text NOT NULL REFERENCES rnn_jobs (job_id) ON DELETE CASCADE,
        sequence integer NOT NULL,
        event jsonb NOT NULL,
        PRIMARY KEY (job_id, sequence)
    );
    CREATE TABLE rnn_job_checkpoints (
        job_id text NOT NULL REFERENCES rnn_jobs (job_id) ON DELETE CASCADE,
        file text NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (job_id, file)
    );
    CREATE TABLE rnn_uploads (
        dataset_id text PRIMARY KEY,
        name text NOT NULL,
        format text NOT NULL,
        size_bytes bigint NOT NULL,
        sha256 text NOT NULL,
        data bytea NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_LOCK_KEY = 0x726E6E  # pg_advisory_xact_lock key of the migrations ("rnn")


class StoreError(ValueError):
    """RNN_STORE is malformed, unreachable or of a newer schema: the process refuses to start."""


def is_postgres(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(malformed)"
    host, port, db = info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname", "")
    return f"postgresql://{info.get('user', '') + '@' if info.get('user') else ''}{host}:{port}/{db}"


def unavailable(exc: BaseException) -> ServiceError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE,
        f"the store ({SETTING}) is unreachable: {first}; retry when the database is back",
        reason="STORE_UNAVAILABLE",
    )


DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg_pool.PoolTimeout)


class Database:
    """A pool of connections to RNN_STORE; migrated on open. `timeout`: seconds to wait for a connection."""

    def __init__(self, url: str, *, max_size: int = 8, timeout: float = 5.0, migrate_schema: bool = True):
        self.url, self.where = url, describe(url)
        try:
            conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"{SETTING}: expected a postgresql:// URL, got a malformed one ({exc})") \
                from None
        try:  # one direct connection first: its error says why (the pool's only says it timed out)
            with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
                if migrate_schema:
                    migrate(conn)
                else:
                    check_version(conn)
        except psycopg.Error as exc:
            raise StoreError(f"{SETTING}: cannot use the database {self.where}: {exc}".strip()) from None
        self.pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
            check=psycopg_pool.ConnectionPool.check_connection,
            open=False,
            name="rnn-store",
        )
        self.pool.open(wait=False)

    @contextmanager
    def connect(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """An autocommit connection from the pool (waiting at most `timeout` s, default the pool's); a lost
        database raises ServiceError(UNAVAILABLE)."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except DB_ERRORS as exc:
            raise unavailable(exc) from None

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Cursor]:
        """A cursor inside one transaction (committed on exit, rolled back on an exception)."""
        with self.connect() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        self.pool.close()


def check_version(conn: psycopg.Connection) -> int:
    """The database's schema version; StoreError when it is newer than this code's."""
    row = conn.execute(
        "SELECT to_regclass('rnn_schema_migrations') IS NOT NULL"
    ).fetchone()
    version = 0
    if row[0]:
        version = conn.execute("SELECT coalesce(max(version), 0) FROM rnn_schema_migrations").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{SETTING}: the database has schema version {version}, newer than this server's "
            f"{SCHEMA_VERSION}; upgrade rnn-service (or point {SETTING} at another database)"
        )
    return version


def migrate(conn: psycopg.Connection) -> int:
    """Apply the missing schema versions in one transaction; returns the version now in place."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS rnn_schema_migrations ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = check_version(conn)
        for number in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[number - 1])
            conn.execute("INSERT INTO rnn_schema_migrations (version) VALUES (%s)", (number,))
            log.info("store schema migrated", extra={"version": number})
    return SCHEMA_VERSION


class Listener:
    """LISTENs on CHANNELS over its own connection (a daemon thread) and calls the subscribers' callbacks.

    Callbacks run on the listener thread and must be quick. `on_reset` callbacks run whenever the connection
    is (re)established, since notifications sent while it was down are lost.
    """

    def __init__(self, url: str, retry: float = 0.5) -> None:
        self.url, self.retry = url, retry
        self._subs: dict[str, list[Callable[[str], None]]] = defaultdict(list)
        self._resets: list[Callable[[], None]] = []
        self._closing = threading.Event()
        self.connected = threading.Event()
        self._conn: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="rnn-pg-listener")

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        self._subs[channel].append(callback)

    def on_reset(self, callback: Callable[[], None]) -> None:
        self._resets.append(callback)

    def start(self, wait: float = 5.0) -> Listener:
        self._thread.start()
        self.connected.wait(wait)
        return self

    def _reset(self) -> None:
        for callback in self._resets:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one subscriber's bug must not stop the others
                log.exception("listener reset callback failed")

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=3) as conn:
                    self._conn = conn
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {channel}")
                    self._reset()  # after LISTEN: anything changed from now on is notified
                    self.connected.set()
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=1.0):
                            for callback in self._subs.get(note.channel, ()):
                                try:
                                    callback(note.payload)
                                except Exception:  # noqa: BLE001
                                    log.exception("notification callback failed")
                        conn.execute("SELECT 1")  # notice a dead server between notifications
            except psycopg.Error as exc:
                if self._closing.is_set():
                    return
                if self.connected.is_set():
                    log.warning("store listener lost the database; reconnecting", extra={"error": str(exc)})
                self.connected.clear()
                self._reset()
                time.sleep(self.retry)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(3)
