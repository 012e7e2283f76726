"""Status codes become the matching RnnError subclasses, with field violations and the request id decoded."""

from __future__ import annotations

import grpc
import pytest

from client import RnnClient, errors

from .fake_server import start_fake_server

TABLE = [
    ("INVALID_ARGUMENT", errors.InvalidArgument),
    ("NOT_FOUND", errors.NotFound),
    ("ALREADY_EXISTS", errors.AlreadyExists),
    ("FAILED_PRECONDITION", errors.FailedPrecondition),
    ("RESOURCE_EXHAUSTED", errors.ResourceExhausted),
    ("UNAUTHENTICATED", errors.Unauthenticated),
    ("PERMISSION_DENIED", errors.PermissionDenied),
    ("UNAVAILABLE", errors.Unavailable),
    ("DEADLINE_EXCEEDED", errors.DeadlineExceeded),
    ("CANCELLED", errors.Cancelled),
    ("INTERNAL", errors.Internal),
    ("UNIMPLEMENTED", errors.Unimplemented),
    ("ABORTED", errors.RnnError),
]


@pytest.fixture(scope="module")
def fake():
    server, port, servicer = start_fake_server()
    with RnnClient(f"127.0.0.1:{port}") as client:
        yield client, servicer
    server.stop(None)


@pytest.mark.parametrize(("code_name", "cls"), TABLE)
def test_status_code_maps_to_one_exception_class(fake, code_name, cls):
    client, _ = fake
    with pytest.raises(cls) as info:
        client.get_model(code_name)
    err = info.value
    assert type(err) is cls
    assert err.code == grpc.StatusCode[code_name]
    assert f"model {code_name!r}: failed on purpose" in err.message
    assert err.request_id == "req-123"
    assert err.field_violations == (errors.FieldViolation("model", err.message),)
    assert isinstance(err.__cause__, grpc.RpcError)


def test_successful_call_returns_plain_values(fake):
    client, _ = fake
    info = client.get_model("ok")
    assert (info.name, info.task, info.vocab_size) == ("ok", "language_model", 7)


def test_internal_error_message_quotes_the_request_id(fake):
    client, _ = fake
    with pytest.raises(errors.Internal) as info:
        client.get_model("INTERNAL")
    assert "req-123" in str(info.value)


def test_unreachable_server_raises_unavailable_which_is_a_connection_error():
    with RnnClient("127.0.0.1:1", timeout=5) as client, pytest.raises(errors.Unavailable) as info:
        client.list_models()
    assert isinstance(info.value, ConnectionError)


def test_python_base_classes_let_callers_catch_broadly():
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.DeadlineExceeded, TimeoutError)


def test_decode_details_reads_request_id_from_metadata_without_status_details():
    details = errors.decode_details((("request-id", "abc"),))
    assert details.request_id == "abc" and details.field_violations == ()


@pytest.mark.parametrize("bad", ["", None, 3])
def test_client_rejects_bad_arguments_before_calling(fake, bad):
    client, _ = fake
    with pytest.raises(errors.InvalidArgument, match="model: expected a non-empty str"):
        client.get_model(bad)


def test_token_is_sent_as_bearer_authorization_metadata():
    server, port, _ = start_fake_server()
    try:
        with RnnClient(f"127.0.0.1:{port}", token="s3cret-token-0123456789") as client:
            assert client.get_model("whoami").name == "Bearer s3cret-token-0123456789"
        with RnnClient(f"127.0.0.1:{port}") as client:
            assert client.get_model("whoami").name == ""
    finally:
        server.stop(None)


def test_missing_pem_file_is_a_clear_argument_error(tmp_path):
    with pytest.raises(errors.InvalidArgument, match="ca_file: expected a PEM file"):
        RnnClient("127.0.0.1:1", ca_file=str(tmp_path / "nope.pem"))
