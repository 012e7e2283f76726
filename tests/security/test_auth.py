"""Bearer tokens and roles at the gRPC boundary, TLS and mutual TLS with certificates made by the test."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.auth import (
    AuthInterceptor,
    check_exposure,
    is_loopback,
    parse_tokens,
    required_role,
    server_credentials,
)
from server.bridge import EventLoopThread

ADMIN, INFER = "admin-token-0123456789", "infer-token-0123456789"
METHODS = {
    "/rnn.v1.InferenceService/Predict": "inference",
    "/rnn.v1.InferenceService/StreamGenerate": "inference",
    "/rnn.v1.ModelService/GetModel": "inference",
    "/rnn.v1.ModelService/ListModels": "inference",
    "/rnn.v1.ModelService/DeleteModel": "admin",
    "/rnn.v1.ModelService/ExportOnnx": "admin",
    "/rnn.v1.TrainingService/Train": "admin",
    "/rnn.v1.TrainingService/UploadDataset": "admin",
    "/rnn.v1.TrainingService/CancelJob": "admin",
}


def _echo_handlers():
    """Raw-bytes handlers standing in for the real services (the interceptor only looks at method names)."""

    async def echo(request, _context):
        return request

    by_service: dict[str, dict] = {}
    for method in METHODS:
        service, name = method[1:].split("/")
        by_service.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(echo)
    return [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]


class _Served:
    """A grpc.aio server with the AuthInterceptor on the server's event loop thread (as in server/app.py)."""

    def __init__(self, credentials=None) -> None:
        self.loop = EventLoopThread.shared()
        self.server, self.port = self.loop.run(self._build(credentials))

    @staticmethod
    async def _build(credentials):
        server = grpc.aio.server(
            interceptors=[AuthInterceptor(parse_tokens(f"admin:{ADMIN}\ninference:{INFER}", "test"))],
        )
        server.add_generic_rpc_handlers(_echo_handlers())
        health_pb2_grpc.add_HealthServicer_to_server(health_aio.HealthServicer(), server)
        port = (
            server.add_secure_port("127.0.0.1:0", credentials)
            if credentials
            else server.add_insecure_port("127.0.0.1:0")
        )
        await server.start()
        return server, port

    def stop(self, grace) -> None:
        self.loop.run(self.server.stop(grace))


def _serve(credentials=None):
    served = _Served(credentials)
    return served, served.port


@pytest.fixture(scope="module")
def plain_server():
    server, port = _serve()
    yield port
    server.stop(None)


def _call(channel, method, token=None):
    metadata = [("authorization", f"Bearer {token}")] if token else None
    return channel.unary_unary(method)(b"ping", metadata=metadata, timeout=10)


@pytest.mark.parametrize("method,role", sorted(METHODS.items()))
def test_every_rpc_checks_token_and_role(plain_server, method, role):
    with grpc.insecure_channel(f"127.0.0.1:{plain_server}") as ch:
        for token, code in (
            (None, grpc.StatusCode.UNAUTHENTICATED),
            ("wrong-token-0123456789", grpc.StatusCode.UNAUTHENTICATED),
        ):
            with pytest.raises(grpc.RpcError) as err:
                _call(ch, method, token)
            assert err.value.code() == code
        assert _call(ch, method, ADMIN) == b"ping"
        if role == "inference":
            assert _call(ch, method, INFER) == b"ping"
        else:
            with pytest.raises(grpc.RpcError) as err:
                _call(ch, method, INFER)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "admin" in err.value.details()


def test_health_stays_open_without_a_token(plain_server):
    with grpc.insecure_channel(f"127.0.0.1:{plain_server}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_role_table_covers_open_and_unknown_methods():
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
    assert (
        required_role("/rnn.v1.SomethingNew/Method") == "admin"
    )  # unknown methods default to the strict role


@pytest.mark.parametrize(
    "text", ["", "root:abcdefghijklmnopqrst", "admin:short", "admin-no-colon-0123456789"]
)
def test_bad_token_configuration_is_refused_without_echoing_secrets(text):
    with pytest.raises(ValueError) as err:
        parse_tokens(text, "RNN_AUTH_TOKENS")
    assert "RNN_AUTH_TOKENS" in str(err.value)
    assert "abcdefghijklmnopqrst" not in str(err.value)


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True),
                                           ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                           ("10.0.0.1", False), ("127.0.0.1.nip.io", False),
                                           ("127.attacker.example", False), ("", False)])
def test_only_loopback_literals_and_localhost_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_non_loopback_needs_auth_and_tls_or_an_explicit_flag():
    check_exposure("127.0.0.1", False, False, False)
    check_exposure("0.0.0.0", True, True, False)
    check_exposure("0.0.0.0", False, False, True)
    with pytest.raises(ValueError, match="authentication and TLS"):
        check_exposure("0.0.0.0", False, False, False)
    with pytest.raises(ValueError, match="without TLS"):
        check_exposure("0.0.0.0", True, False, False)


# ------------------------------------------------------------------------------------------------------ TLS
x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _cert(name, issuer_key=None, issuer_name=None, ca=False, expired=False):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key, cert, cert.public_bytes(serialization.Encoding.PEM), pem_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert, ca_pem, _ = _cert("test-ca", ca=True)
    other_key, _, other_pem, _ = _cert("other-ca", ca=True)
    _, _, srv_pem, srv_key = _cert("localhost", ca_key, ca_cert.subject)
    _, _, cli_pem, cli_key = _cert("client", ca_key, ca_cert.subject)
    _, _, old_pem, old_key = _cert("localhost", ca_key, ca_cert.subject, expired=True)
    files = {
        "ca": ca_pem,
        "other_ca": other_pem,
        "srv": srv_pem,
        "srv_key": srv_key,
        "cli": cli_pem,
        "cli_key": cli_key,
        "old": old_pem,
        "old_key": old_key,
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return {k: str(d / k) for k in files}, files


def _secure_call(port, root, key=None, cert=None):
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(f"localhost:{port}", creds, options=options) as ch:
        return _call(ch, "/rnn.v1.InferenceService/Predict", INFER)


def test_tls_serves_clients_that_trust_the_ca_and_rejects_others(pki):
    paths, pem = pki
    server, port = _serve(server_credentials(paths["srv"], paths["srv_key"]))
    try:
        assert _secure_call(port, pem["ca"]) == b"ping"
        with pytest.raises(grpc.RpcError) as err:
            _secure_call(port, pem["other_ca"])  # wrong certificate authority
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


def test_expired_server_certificate_is_rejected_by_clients(pki):
    paths, pem = pki
    server, port = _serve(server_credentials(paths["old"], paths["old_key"]))
    try:
        with pytest.raises(grpc.RpcError) as err:
            _secure_call(port, pem["ca"])
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


def test_mutual_tls_requires_a_client_certificate_from_the_ca(pki):
    paths, pem = pki
    server, port = _serve(server_credentials(paths["srv"], paths["srv_key"], paths["ca"]))
    try:
        assert _secure_call(port, pem["ca"], pem["cli_key"], pem["cli"]) == b"ping"
        with pytest.raises(grpc.RpcError) as err:
            _secure_call(port, pem["ca"])  # no client certificate
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


def test_tls_flag_errors_name_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        server_credentials(str(tmp_path / "x"), None)
    with pytest.raises(ValueError, match="--tls-cert: no such file"):
        server_credentials(str(tmp_path / "missing.pem"), str(tmp_path / "k.pem"))
