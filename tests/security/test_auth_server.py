"""Bearer tokens and roles end to end against the real server: every RPC and role, health, configuration."""

from __future__ import annotations

import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn.v1 import inference_service_pb2, model_service_pb2, training_service_pb2
from server.__main__ import main as server_main

from .helpers import (
    ADMIN_TOKEN,
    INFER_TOKEN,
    RPCS,
    Stubs,
    bearer,
    save_tiny_models,
    start_server,
    status_of,
    write_tokens,
)

AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {vars(record)}")


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A server on loopback with tokens from a file, the tiny models, and the records of every log line."""
    root = tmp_path_factory.mktemp("auth")
    save_tiny_models(root / "models")
    capture = _Capture()
    logger = logging.getLogger("rnn")
    logger.addHandler(capture)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    server, port = start_server(root / "models", auth_tokens_file=write_tokens(root / "tokens"))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield Stubs(channel), capture, port
    channel.close()
    server.drain(1)
    logger.removeHandler(capture)
    logger.setLevel(old_level)


def test_the_call_table_covers_every_rpc_of_every_service():
    declared = {f"/rnn.v1.{s.name}/{m.name}" for module in (inference_service_pb2, model_service_pb2,
                                                             training_service_pb2)
                for s in module.DESCRIPTOR.services_by_name.values() for m in s.methods}
    assert {rpc.method for rpc in RPCS} == declared


@pytest.mark.parametrize("rpc", RPCS, ids=[r.method.rsplit("/", 1)[1] for r in RPCS])
def test_every_rpc_needs_a_known_token_and_the_role(secured, rpc):
    stubs = secured[0]
    for metadata in (None, bearer("unknown-token-0123456789"), [("authorization", f"Basic {ADMIN_TOKEN}")],
                     [("authorization", "Bearer")], bearer(ADMIN_TOKEN + "x")):
        assert status_of(rpc, stubs, metadata) == grpc.StatusCode.UNAUTHENTICATED, metadata
    inference_code = status_of(rpc, stubs, bearer(INFER_TOKEN))
    if rpc.role == "inference":
        assert inference_code == grpc.StatusCode.OK
    else:
        assert inference_code == grpc.StatusCode.PERMISSION_DENIED
    assert status_of(rpc, stubs, bearer(ADMIN_TOKEN)) == rpc.admin_code  # the call reached its servicer


@settings(max_examples=80, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(scheme=st.sampled_from(["Bearer ", "bearer ", "BEARER ", "Basic ", "", "Bearer  ", "Token "]),
       token=st.one_of(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80),
                       st.sampled_from([ADMIN_TOKEN[:-1], ADMIN_TOKEN.upper(), INFER_TOKEN + "x", "Bearer"])))
def test_fuzzed_authorization_headers_are_unauthenticated(secured, scheme, token):
    stubs = secured[0]
    predict = next(r for r in RPCS if r.method.endswith("/Predict"))
    assert status_of(predict, stubs, [("authorization", scheme + token)]) == grpc.StatusCode.UNAUTHENTICATED


def test_permission_denied_names_the_missing_role(secured):
    stubs = secured[0]
    with pytest.raises(grpc.RpcError) as err:
        stubs.training.ListJobs(training_service_pb2.ListJobsRequest(), metadata=bearer(INFER_TOKEN),
                                timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'admin' role" in err.value.details() and "'inference'" in err.value.details()


def test_health_and_reflection_stay_open_without_a_token(secured):
    stubs = secured[0]
    reply = health_pb2_grpc.HealthStub(stubs.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)
    replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=10))
    names = {s.name for s in replies[0].list_services_response.service}
    assert "rnn.v1.InferenceService" in names


def test_tokens_never_appear_in_logs_or_error_messages(secured):
    stubs, capture, _ = secured
    for rpc in RPCS:
        for token in (ADMIN_TOKEN, INFER_TOKEN, "unknown-token-0123456789"):
            try:
                rpc.call(stubs, bearer(token))
            except grpc.RpcError as exc:
                assert token not in (exc.details() or "")
    assert capture.lines, "the server logged nothing: the check below would be vacuous"
    text = "\n".join(capture.lines)
    for token in (ADMIN_TOKEN, INFER_TOKEN, "unknown-token-0123456789"):
        assert token not in text


def test_tokens_can_come_from_the_environment(tmp_path, monkeypatch):
    save_tiny_models(tmp_path, ("lm",))
    monkeypatch.setenv("RNN_AUTH_TOKENS", f"inference:{INFER_TOKEN},admin:{ADMIN_TOKEN}")
    server, port = start_server(tmp_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stubs = Stubs(channel)
            list_models = next(r for r in RPCS if r.method.endswith("ListModels"))
            assert status_of(list_models, stubs, None) == grpc.StatusCode.UNAUTHENTICATED
            assert status_of(list_models, stubs, bearer(INFER_TOKEN)) == grpc.StatusCode.OK
    finally:
        server.drain(1)


def test_rnn_client_sends_its_token(secured):
    from client import rnn_client
    from client.errors import PermissionDenied, Unauthenticated

    port = secured[2]
    with rnn_client.RnnClient(f"127.0.0.1:{port}", token=INFER_TOKEN) as client:
        assert "lm" in [m.name for m in client.list_models()]
        with pytest.raises(PermissionDenied):
            client.delete_model("lm")
    with rnn_client.RnnClient(f"127.0.0.1:{port}") as client, pytest.raises(Unauthenticated):
        client.list_models()


# ------------------------------------------------------------------------------------------------ exposure
def _serve_args(tmp_path, *extra: str) -> list[str]:
    return ["--port", "0", "--metrics-port", "0", "--model-dir", str(tmp_path / "m"), *extra]


def test_server_refuses_a_public_address_without_auth_and_tls(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RNN_ALLOW_INSECURE", raising=False)
    monkeypatch.delenv("RNN_AUTH_TOKENS", raising=False)
    assert server_main(_serve_args(tmp_path, "--host", "0.0.0.0")) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without authentication and TLS" in err
    assert "--allow-insecure" in err
    tokens = write_tokens(tmp_path / "tokens")
    assert server_main(_serve_args(tmp_path, "--host", "0.0.0.0", "--auth-tokens-file", tokens)) == 2
    assert "without TLS" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_explicit_flag_allows_a_public_address(tmp_path, monkeypatch, how):
    from server import create_server
    from server.config import load_config

    env = {"RNN_ALLOW_INSECURE": "1"} if how == "env" else {}
    argv = _serve_args(tmp_path, "--host", "0.0.0.0", *(["--allow-insecure"] if how == "flag" else []))
    server, port = create_server(load_config(argv, env))
    try:
        assert port > 0
    finally:
        server.drain(0.5)


def test_loopback_needs_no_flag(tmp_path, monkeypatch):
    from server import create_server
    from server.config import load_config

    monkeypatch.delenv("RNN_AUTH_TOKENS", raising=False)
    server, port = create_server(load_config(_serve_args(tmp_path, "--host", "127.0.0.1"), {}))
    server.drain(0.5)
    assert port > 0


@pytest.mark.parametrize("content", ["", "admin:short", "root:abcdefghijklmnopqrstuvwxyz"])
def test_a_bad_tokens_file_stops_the_server_without_showing_secrets(tmp_path, capsys, content):
    (tmp_path / "tokens").write_text(content)
    assert server_main(_serve_args(tmp_path, "--auth-tokens-file", str(tmp_path / "tokens"))) == 2
    err = capsys.readouterr().err
    assert "tokens" in err and "abcdefghijklmnopqrstuvwxyz" not in err
