"""Prometheus metrics of one server instance (own registry, so several servers can live in one process)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """Calls and latency by method and status, tokens generated, open streams and sequences, jobs by state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("rnn_grpc_calls", "Finished gRPC calls", ["method", "status"], registry=r)
        self.latency = Histogram(
            "rnn_grpc_call_seconds",
            "gRPC call duration (streams: until the end)",
            ["method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "rnn_tokens_generated", "Tokens produced by StreamGenerate", ["model"], registry=r
        )
        self.active_streams = Gauge("rnn_active_streams", "Open streaming calls", ["method"], registry=r)
        self.active_sequences = Gauge(
            "rnn_active_sequences", "PredictStream sequences holding state", registry=r
        )
        self.refused = Counter(
            "rnn_refused_calls", "Calls refused by a server limit (named by `limit`)", ["method", "limit"],
            registry=r,
        )
        self.jobs = Gauge("rnn_training_jobs", "Training jobs by state", ["state"], registry=r)
        self._http = None

    def observe_call(self, method: str, status: str, seconds: float) -> None:
        self.calls.labels(method, status).inc()
        self.latency.labels(method, status).observe(seconds)

    def set_job_counts(self, counts: Iterable[tuple[str, int]]) -> None:
        for state, n in counts:
            self.jobs.labels(state).set(n)

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (/metrics) on host:port; returns the bound port (port 0 picks one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_address[1]

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def text(self) -> str:
        """The exposition text (what /metrics serves)."""
        return generate_latest(self.registry).decode()
