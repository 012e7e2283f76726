"""`rnn-server` on a port another process holds: one readable line naming it and exit code 2."""

from __future__ import annotations

import logging
import socket

import pytest

from server.__main__ import main as server_main


@pytest.fixture(autouse=True)
def _keep_log_handlers():
    """main() attaches a JSON log handler to the captured stderr; later tests must not log to it."""
    logger = logging.getLogger("rnn")
    before = list(logger.handlers)
    yield
    logger.handlers[:] = before


def test_a_port_in_use_stops_the_server_with_a_message_naming_the_address(tmp_path, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = server_main(["--port", str(port), "--metrics-port", "0", "--model-dir", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"rnn-server: cannot listen on 127.0.0.1:{port}: is another server using the port?" in err
    assert "Traceback" not in err


def test_a_metrics_port_in_use_stops_the_server_with_a_message_naming_the_flag(tmp_path, capsys):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code = server_main(["--port", "0", "--metrics-port", str(port), "--model-dir", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"rnn-server: cannot serve metrics on 127.0.0.1:{port}: address already in use" in err
    assert "--metrics-port" in err
