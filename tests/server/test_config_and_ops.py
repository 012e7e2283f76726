"""Server configuration (flags > RNN_* variables > defaults), call logs, metrics, health probe, paging."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from server import healthcheck
from server.config import ConfigError, ServerConfig, load_config
from server.logs import JsonFormatter
from server.metrics import Metrics
from server.servicers.paging import page


def test_defaults_serve_a_local_user_without_configuration():
    config = load_config([], {})
    assert config.host == "127.0.0.1" and config.port == 50051 and config.model_dir == Path("models")
    assert config.metrics_port == 9464 and config.max_training_jobs == 1 and config.log_level == "INFO"


def test_flags_override_environment_which_overrides_defaults():
    env = {
        "RNN_PORT": "6000",
        "RNN_MAX_BATCH_SIZE": "8",
        "RNN_LOG_LEVEL": "debug",
        "RNN_ALLOW_INSECURE": "yes",
    }
    config = load_config(["--port", "7000", "--model-dir", "/srv/m"], env)
    assert config.port == 7000 and config.max_batch_size == 8 and config.log_level == "DEBUG"
    assert config.model_dir == Path("/srv/m") and config.allow_insecure is True


@pytest.mark.parametrize(
    "env,name",
    [
        ({"RNN_PORT": "http"}, "port"),
        ({"RNN_PORT": "70000"}, "port"),
        ({"RNN_MAX_BATCH_SIZE": "0"}, "max_batch_size"),
        ({"RNN_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"RNN_ALLOW_INSECURE": "maybe"}, "allow_insecure"),
        ({"RNN_SHUTDOWN_GRACE": "-1"}, "shutdown_grace"),
        ({"RNN_METRICS_HOST": " 127.0.0.1"}, "metrics_host"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(env, name):
    with pytest.raises(ConfigError, match=name):
        load_config([], env)


def test_a_public_address_without_tls_and_auth_is_refused(tmp_path):
    from server import create_server

    with pytest.raises(ValueError, match="allow-insecure"):
        create_server(ServerConfig(host="0.0.0.0", port=0, model_dir=tmp_path, metrics_port=0))


def test_metrics_can_listen_on_another_address_than_the_grpc_port(tmp_path):
    """--metrics-host keeps the unauthenticated Prometheus endpoint private when gRPC listens on a public
    address (here: gRPC on every address with --allow-insecure, metrics on loopback only)."""
    from server import create_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    config = ServerConfig(host="0.0.0.0", port=0, model_dir=tmp_path, metrics_port=free,
                          metrics_host="127.0.0.1", allow_insecure=True)
    server, _ = create_server(config)
    try:
        with socket.create_connection(("127.0.0.1", server.metrics_port), timeout=5):
            pass
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        port_hex = f"{server.metrics_port:04X}"
        assert f"0100007F:{port_hex}" in listening and f"00000000:{port_hex}" not in listening
    finally:
        server.stop(0)


def test_every_call_logs_one_line_with_method_model_status_duration_and_request_id(stubs, trained, caplog):
    caplog.set_level(logging.INFO, logger="rnn.server.calls")
    with pytest.raises(grpc.RpcError):
        stubs.models.GetModel(mpb.GetModelRequest(model="absent"), metadata=[("x-request-id", "req-42")])
    stubs.inference.Predict(ipb.PredictRequest(model="clf", inputs=[pb.SequenceInput(text="cat")]))
    deadline = time.monotonic() + 5  # the line is written when the call ends, just after the client returns
    while time.monotonic() < deadline:
        records = [r for r in caplog.records if r.name == "rnn.server.calls"]
        if records and records[-1].method == "Predict":
            break
        time.sleep(0.02)
    assert [(r.method, r.model, r.status) for r in records[-2:]] == [
        ("GetModel", "absent", "NOT_FOUND"),
        ("Predict", "clf", "OK"),
    ]
    assert records[-2].request_id == "req-42" and records[-1].duration_ms >= 0
    line = json.loads(JsonFormatter().format(records[-2]))
    assert {"method", "model", "status", "duration_ms", "request_id", "time", "level"} <= set(line)


def test_metrics_endpoint_serves_prometheus_text():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = Metrics()
    bound = metrics.serve("127.0.0.1", port)
    try:
        metrics.observe_call("Predict", "OK", 0.01)
        text = urllib.request.urlopen(f"http://127.0.0.1:{bound}/metrics", timeout=5).read().decode()
        assert 'rnn_grpc_calls_total{method="Predict",status="OK"} 1.0' in text
    finally:
        metrics.close()


def test_health_probe_exits_zero_when_serving_and_nonzero_otherwise(served, capsys):
    assert healthcheck.main(["--address", f"127.0.0.1:{served[1]}"]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    assert healthcheck.main(["--address", f"127.0.0.1:{dead}", "--timeout", "0.5"]) == 1


def test_paging_walks_every_item_once():
    items = list(range(7))
    seen, token = [], ""
    while True:
        chunk, token = page(items, 3, token)
        seen += chunk
        if not token:
            break
    assert seen == items


def test_list_models_pages(stubs, trained):
    first = stubs.models.ListModels(mpb.ListModelsRequest(page_size=2))
    assert len(first.models) == 2 and first.next_page_token
    rest = stubs.models.ListModels(mpb.ListModelsRequest(page_size=1000, page_token=first.next_page_token))
    names = [m.name for m in first.models] + [m.name for m in rest.models]
    assert len(names) == len(set(names)) and {"lm", "clf", "fc", "tagger"} <= set(names)
