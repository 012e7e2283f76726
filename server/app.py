"""`create_server(config) -> (server, port)`: the gRPC server with every service, health, reflection, metrics.

Separate from `main()` so tests can bind port 0 in-process. The server is a grpc.aio server running on the
process's event loop thread (server/bridge.py); the returned `RnnServer` gives it a blocking API
(start / wait_for_termination / stop) and adds `drain(grace)`: health NOT_SERVING, new calls refused with
UNAVAILABLE, in-flight calls get `grace` seconds, running jobs checkpoint and become INTERRUPTED.
"""

from __future__ import annotations

import logging
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from rnn.v1 import inference_service_pb2, model_service_pb2, training_service_pb2
from rnn.v1 import inference_service_pb2_grpc as ipb_grpc
from rnn.v1 import model_service_pb2_grpc as mpb_grpc
from rnn.v1 import training_service_pb2_grpc as tpb_grpc

from . import auth, reflection
from .batching import BatchingPool, BatchSettings
from .bridge import EventLoopThread, adapt_servicer
from .config import ServerConfig
from .interceptor import CallInterceptor, StreamLimiter
from .jobs.directory import JobManager
from .jobs.uploads import UploadStore
from .metrics import Metrics
from .sequences import SequenceRegistry
from .servicers.inference import InferenceServicer
from .servicers.models import ModelServicer
from .servicers.training import TrainingServicer
from .state import ServerState
from .store import ModelStore

log = logging.getLogger("rnn.server")
_DESCRIPTORS = {
    "TrainingService": training_service_pb2.DESCRIPTOR,
    "InferenceService": inference_service_pb2.DESCRIPTOR,
    "ModelService": model_service_pb2.DESCRIPTOR,
}
SERVICES = {
    "rnn.v1.TrainingService": training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name,
    "rnn.v1.InferenceService": inference_service_pb2.DESCRIPTOR.services_by_name[
        "InferenceService"
    ].full_name,
    "rnn.v1.ModelService": model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
}


class RnnServer:
    """The running server: the grpc.aio server (on the process's loop thread), the state it serves, health."""

    def __init__(
        self,
        loop: EventLoopThread,
        grpc_server: grpc.aio.Server,
        state: ServerState,
        health_servicer: health_aio.HealthServicer,
        metrics_port: int | None,
    ) -> None:
        self.loop, self.grpc_server, self.state, self.health = loop, grpc_server, state, health_servicer
        self.metrics_port = metrics_port
        self._stopped = threading.Event()
        self._terminated = threading.Event()

    def start(self) -> RnnServer:
        self.loop.run(self._start())
        return self

    async def _start(self) -> None:
        await self.grpc_server.start()
        for name in ("", *SERVICES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server has stopped; like grpc.Server's, True means `timeout` passed first."""
        return not self._terminated.wait(timeout)

    def drain(self, grace: float | None = None) -> None:
        """Graceful shutdown (idempotent); returns when in-flight calls and workers have finished."""
        if self._stopped.is_set():
            self._terminated.wait()
            return
        self._stopped.set()
        grace = self.state.config.shutdown_grace if grace is None else grace
        self.state.draining.set()
        # every service NOT_SERVING; later sets are ignored
        self.loop.run(self.health.enter_graceful_shutdown())
        jobs = threading.Thread(target=self.state.jobs.shutdown, args=(grace,), daemon=True)
        jobs.start()
        try:
            self.loop.run(self.grpc_server.stop(grace), timeout=grace + 5)
        except TimeoutError:
            log.warning("the gRPC server did not stop within %.1f s", grace + 5)
        jobs.join(grace + 10)
        self.state.sequences.close()
        self.state.metrics.close()
        self.state.executor.shutdown(wait=False, cancel_futures=True)
        self._terminated.set()

    def stop(self, grace: float | None = None) -> threading.Event:
        """grpc.Server-like stop: drains and returns a set Event."""
        self.drain(grace)
        done = threading.Event()
        done.set()
        return done


def _credentials(config: ServerConfig):
    tokens = auth.load_tokens(config.auth_tokens_file or None)
    creds = auth.server_credentials(
        config.tls_cert or None, config.tls_key or None, config.tls_client_ca or None
    )
    auth.check_exposure(config.host, tokens is not None, creds is not None, config.allow_insecure)
    return tokens, creds


def create_server(config: ServerConfig) -> tuple[RnnServer, int]:
    """Build (not start) the server and bind it; returns it with the bound port (config.port 0 picks one)."""
    config.validate()
    tokens, creds = _credentials(config)
    metrics = Metrics()
    if config.store:
        store, jobs, uploads = _postgres_store(config, metrics)
    else:
        store = ModelStore(config.model_dir, cache_size=config.model_cache_size)
        jobs = JobManager(
            config.model_dir,
            max_running=config.max_training_jobs,
            max_queued=config.max_queued_jobs,
            start_method=config.worker_start_method,
            blas_threads=config.blas_threads,
            on_change=lambda counts: metrics.set_job_counts(counts.items()),
        )
        uploads = UploadStore(config.model_dir, config.max_upload_bytes, config.max_upload_disk_bytes)
    state = ServerState(
        config=config,
        store=store,
        jobs=jobs,
        metrics=metrics,
        sequences=SequenceRegistry(config.sequence_idle_timeout, config.max_open_sequences, metrics),
        uploads=uploads,
        batching=BatchingPool(
            BatchSettings.from_config(config),
            metrics.registry,
            max_models=config.model_cache_size,
            latest=store.get,
        ),
        executor=futures.ThreadPoolExecutor(max_workers=_workers(config), thread_name_prefix="rnn-rpc"),
    )
    limiter = StreamLimiter(config.max_concurrent_streams, config.max_streams_per_client)
    interceptors = [CallInterceptor(metrics, limiter, state.draining, tokens=tokens,
                                    max_calls=max_calls(config),
                                    request_timeout=config.request_message_timeout)]
    loop = EventLoopThread.shared()
    server, health_servicer, address, port = loop.run(_build(config, state, interceptors, creds))
    metrics_host = config.metrics_host or config.host
    metrics_port = metrics.serve(metrics_host, config.metrics_port) if config.metrics_port else None
    log.info(
        "server bound",
        extra={
            "address": address,
            "port": port,
            "metrics_port": metrics_port,
            "model_dir": str(config.model_dir),
            "store": jobs.db.where if config.store else "model_dir",
        },
    )
    return RnnServer(loop, server, state, health_servicer, metrics_port), port


def _postgres_store(config: ServerConfig, metrics: Metrics):
    """The PostgreSQL backends (server/pg.py); StoreError (a ValueError naming RNN_STORE) if unusable."""
    from .jobs.pgworker import PgWorker
    from .jobs.postgres import PgJobs, PgUploads
    from .pg import Database, Listener
    from .pgmodels import PgModelStore

    db = Database(config.store, max_size=16)
    listener = Listener(config.store).start()
    store = PgModelStore(db, listener, config.model_dir, cache_size=config.model_cache_size)
    worker = None
    if config.max_training_jobs:
        worker = PgWorker(
            db,
            listener,
            slots=config.max_training_jobs,
            lease_seconds=config.job_lease_seconds,
            work_dir=config.model_dir,
            start_method=config.worker_start_method,
            blas_threads=config.blas_threads,
        ).start()
    staging = config.model_dir / ".staging"
    jobs = PgJobs(
        db,
        listener,
        staging,
        max_queued=config.max_queued_jobs,
        worker=worker,
        on_change=lambda counts: metrics.set_job_counts(counts.items()),
    )
    uploads = PgUploads(db, staging, config.max_upload_bytes, config.max_upload_disk_bytes)
    return store, jobs, uploads


async def _build(config: ServerConfig, state: ServerState, interceptors: list, creds):
    """The grpc.aio server with every service registered and its port bound (run on the loop thread)."""
    options = [
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", streams_per_connection(config)),
    ]
    # No maximum_concurrent_rpcs: grpc.aio would count a call from its HEADERS on, before any credentials
    # or message, and refuse health checks too; the CallInterceptor's max_concurrent_calls counts instead.
    server = grpc.aio.server(interceptors=interceptors, options=options)
    pool = state.executor
    for add, servicer, name in (
        (tpb_grpc.add_TrainingServiceServicer_to_server, TrainingServicer(state), "TrainingService"),
        (ipb_grpc.add_InferenceServiceServicer_to_server, InferenceServicer(state), "InferenceService"),
        (mpb_grpc.add_ModelServiceServicer_to_server, ModelServicer(state), "ModelService"),
    ):
        descriptor = _DESCRIPTORS[name].services_by_name[name]
        add(adapt_servicer(servicer, descriptor, pool), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable((*SERVICES, health.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}" if ":" not in config.host else f"[{config.host}]:{config.port}"
    port = server.add_secure_port(address, creds) if creds is not None else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return server, health_servicer, address, port


def max_calls(config: ServerConfig) -> int:
    """rnn.v1 calls served at once (more get RESOURCE_EXHAUSTED naming max_concurrent_calls)."""
    return config.max_concurrent_calls or config.max_concurrent_streams + 16


def streams_per_connection(config: ServerConfig) -> int:
    """The HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS the server advertises on each connection.

    Its default leaves room above the call limit: grpc C-core counts a stream until the call object is
    destroyed, which happens on the event loop some time after the client has read the status. A client that
    starts its next call as soon as one ends therefore holds more server streams than it has calls open
    (measured: 64 clients on one channel against a limit of 100 got 5% of their Predict calls refused with
    REFUSED_STREAM, 38% at 65); calls beyond the call limit are refused by max_concurrent_calls, naming it.
    """
    return config.max_streams_per_connection or max(100, 4 * max_calls(config))


def _workers(config: ServerConfig) -> int:
    """The threads of the blocking work: one per call that may run at once."""
    return max_calls(config)

