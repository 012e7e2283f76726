"""TLS and mutual TLS end to end against the real server, with certificates the test generates."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

pytest.importorskip("cryptography.x509", reason="the tests generate their certificates with cryptography")

from rnn.v1 import model_service_pb2 as mpb  # noqa: E402

from .helpers import (  # noqa: E402
    ADMIN_TOKEN,
    INFER_TOKEN,
    RPCS,
    Stubs,
    bearer,
    make_pki,
    save_tiny_models,
    start_server,
    status_of,
    write_tokens,
)

OVERRIDE = [("grpc.ssl_target_name_override", "localhost")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tls-models")
    save_tiny_models(root, ("lm",))
    return root


def _pem(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _list(port: int, ca: str | None, cert: str | None = None, key: str | None = None, token=INFER_TOKEN):
    """ListModels over TLS trusting `ca`, presenting (`cert`, `key`) when given."""
    creds = grpc.ssl_channel_credentials(_pem(ca), _pem(key), _pem(cert))
    with grpc.secure_channel(f"localhost:{port}", creds, options=OVERRIDE) as channel:
        return Stubs(channel).models.ListModels(mpb.ListModelsRequest(), metadata=bearer(token), timeout=10)


def _code(fn, *args, **kwargs) -> grpc.StatusCode:
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, pki, model_dir):
    tokens = write_tokens(tmp_path_factory.mktemp("tok") / "tokens")
    server, port = start_server(model_dir, tls_cert=pki["srv"], tls_key=pki["srv_key"],
                                auth_tokens_file=tokens)
    yield port
    server.drain(1)


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory, pki, model_dir):
    server, port = start_server(model_dir, tls_cert=pki["srv"], tls_key=pki["srv_key"],
                                tls_client_ca=pki["ca"])
    yield port
    server.drain(1)


def test_tls_serves_a_client_that_trusts_the_server_ca(tls_server, pki):
    assert [m.name for m in _list(tls_server, pki["ca"]).models] == ["lm"]


def test_tls_still_checks_tokens(tls_server, pki):
    assert _code(_list, tls_server, pki["ca"], token=None) == grpc.StatusCode.UNAUTHENTICATED


def test_every_rpc_and_role_over_tls(tls_server, pki):
    creds = grpc.ssl_channel_credentials(_pem(pki["ca"]))
    with grpc.secure_channel(f"localhost:{tls_server}", creds, options=OVERRIDE) as channel:
        stubs = Stubs(channel)
        for rpc in RPCS:
            assert status_of(rpc, stubs, None) == grpc.StatusCode.UNAUTHENTICATED, rpc.method
            expected = grpc.StatusCode.OK if rpc.role == "inference" else grpc.StatusCode.PERMISSION_DENIED
            assert status_of(rpc, stubs, bearer(INFER_TOKEN)) == expected, rpc.method
            assert status_of(rpc, stubs, bearer(ADMIN_TOKEN)) == rpc.admin_code, rpc.method


def test_a_client_trusting_another_ca_cannot_connect(tls_server, pki):
    assert _code(_list, tls_server, pki["other_ca"]) == grpc.StatusCode.UNAVAILABLE


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    with grpc.insecure_channel(f"127.0.0.1:{tls_server}") as channel:
        code = _code(Stubs(channel).models.ListModels, mpb.ListModelsRequest(), metadata=bearer(INFER_TOKEN),
                     timeout=10)
    assert code == grpc.StatusCode.UNAVAILABLE


def test_an_expired_server_certificate_is_rejected(tmp_path, pki, model_dir):
    server, port = start_server(model_dir, tls_cert=pki["old"], tls_key=pki["old_key"])
    try:
        assert _code(_list, port, pki["ca"]) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.drain(0.5)


def test_mtls_accepts_a_client_certificate_signed_by_the_client_ca(mtls_server, pki):
    assert [m.name for m in _list(mtls_server, pki["ca"], pki["cli"], pki["cli_key"]).models] == ["lm"]


@pytest.mark.parametrize("client", [None, "rogue", "old_cli"], ids=["no-cert", "wrong-ca", "expired"])
def test_mtls_rejects_missing_foreign_and_expired_client_certificates(mtls_server, pki, client):
    cert, key = (pki[client], pki[f"{client}_key"]) if client else (None, None)
    assert _code(_list, mtls_server, pki["ca"], cert, key) == grpc.StatusCode.UNAVAILABLE


def test_rnn_client_and_rnnctl_connect_with_tls_and_a_token(tls_server, pki):
    from click.testing import CliRunner

    from client.cli import cli
    from client.errors import Unavailable
    from client.rnn_client import RnnClient

    with RnnClient(f"localhost:{tls_server}", token=ADMIN_TOKEN, ca_file=pki["ca"]) as client:
        assert [m.name for m in client.list_models()] == ["lm"]
    address = f"localhost:{tls_server}"
    with RnnClient(address, token=ADMIN_TOKEN, ca_file=pki["other_ca"], timeout=5) as client:
        with pytest.raises(Unavailable):
            client.list_models()
    argv = ["--address", address, "--ca-file", pki["ca"], "--json", "models", "list"]
    result = CliRunner().invoke(cli, argv, env={"RNN_TOKEN": INFER_TOKEN})
    assert result.exit_code == 0, result.output
    assert '"lm"' in result.output


def test_rnnctl_presents_a_client_certificate_with_the_tls_flags(mtls_server, pki):
    from click.testing import CliRunner

    from client.cli import cli

    base = ["--address", f"localhost:{mtls_server}", "--tls-ca", pki["ca"]]
    ok = CliRunner().invoke(cli, [*base, "--tls-cert", pki["cli"], "--tls-key", pki["cli_key"], "--json",
                                  "models", "list"])
    assert ok.exit_code == 0, ok.output
    assert '"lm"' in ok.output
    refused = CliRunner().invoke(cli, [*base, "--tls-cert", pki["rogue"], "--tls-key", pki["rogue_key"],
                                       "--timeout", "5", "models", "list"])
    assert refused.exit_code != 0


def test_server_refuses_half_a_tls_configuration(tmp_path, pki):
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        start_server(tmp_path, tls_cert=pki["srv"])
    with pytest.raises(ValueError, match="--tls-client-ca needs"):
        start_server(tmp_path, tls_client_ca=pki["ca"])
    with pytest.raises(ValueError, match="no such file"):
        start_server(tmp_path, tls_cert=str(tmp_path / "missing.pem"), tls_key=pki["srv_key"])


def test_public_address_starts_with_tokens_and_tls(tmp_path, pki):
    tokens = write_tokens(tmp_path / "tokens")
    server, port = start_server(tmp_path / "m", host="0.0.0.0", tls_cert=pki["srv"], tls_key=pki["srv_key"],
                                auth_tokens_file=tokens)
    try:
        assert [m.name for m in _list(port, pki["ca"]).models] == []
    finally:
        server.drain(0.5)


def test_the_container_healthcheck_probes_tls_and_mtls_servers(tls_server, mtls_server, pki):
    from server import healthcheck

    plain = ["--timeout", "5"]
    assert healthcheck.main(["--address", f"localhost:{tls_server}", *plain]) == 1  # plaintext probe fails
    assert healthcheck.main(["--address", f"127.0.0.1:{tls_server}", "--tls-ca", pki["ca"],
                             "--server-name", "localhost", *plain]) == 0
    wrong_ca = ["--address", f"localhost:{tls_server}", "--tls-ca", pki["other_ca"], *plain]
    assert healthcheck.main(wrong_ca) == 1
    mtls = ["--address", f"localhost:{mtls_server}", "--tls-ca", pki["ca"], *plain]
    assert healthcheck.main(mtls) == 1  # no client certificate
    assert healthcheck.main([*mtls, "--tls-cert", pki["cli"], "--tls-key", pki["cli_key"]]) == 0
