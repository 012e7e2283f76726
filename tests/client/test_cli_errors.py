"""rnnctl failure paths: readable messages and exit codes, tracebacks only under --verbose."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from client.cli import EXIT_NOT_FOUND, EXIT_UNREACHABLE, cli

from .fake_server import start_fake_server


@pytest.fixture(scope="module")
def address():
    server, port, _ = start_fake_server()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_server_down_gives_a_readable_message_and_what_to_do():
    result = run("--address", "127.0.0.1:1", "models", "list")
    assert result.exit_code == EXIT_UNREACHABLE
    assert "cannot reach the server at 127.0.0.1:1: is `rnn-server` running?" in result.stderr
    assert "Traceback" not in result.output


def test_address_comes_from_the_environment():
    result = CliRunner(env={"RNN_ADDRESS": "127.0.0.1:2"}).invoke(cli, ["models", "list"])
    assert "cannot reach the server at 127.0.0.1:2" in result.stderr


def test_not_found_names_the_model_and_exits_non_zero(address):
    result = run("--address", address, "models", "show", "NOT_FOUND")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "model 'NOT_FOUND'" in result.stderr
    assert "rnnctl models list" in result.stderr


def test_internal_error_shows_the_request_id(address):
    result = run("--address", address, "models", "show", "INTERNAL")
    assert result.exit_code == 1
    assert "req-123" in result.stderr


def test_traceback_only_under_verbose(address):
    quiet = run("--address", address, "models", "show", "INTERNAL")
    loud = run("--address", address, "--verbose", "models", "show", "INTERNAL")
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr


def test_bad_address_is_a_usage_error():
    result = run("--address", "nowhere", "models", "list")
    assert result.exit_code == 2
    assert "expected host:port" in result.output


def test_predict_with_unparsable_ids_is_a_usage_error(address):
    result = run("--address", address, "predict", "m", "--ids", "1,x,3")
    assert result.exit_code == 2
    assert "expected integers" in result.output
