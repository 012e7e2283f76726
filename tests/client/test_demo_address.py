"""`python -m client.demo --address` (as the compose demo runs) uses a running server and leaves it up."""

from __future__ import annotations

from client import RnnClient, demo
from server import ServerConfig, create_server


def test_demo_against_a_running_server_does_not_claim_to_stop_it(tmp_path, capsys):
    server, port = create_server(ServerConfig(port=0, model_dir=tmp_path / "models", metrics_port=0))
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        code = demo.main(["--address", address, "--steps", "5", "--hidden-size", "16",
                          "--corpus-chars", "5000"])
        err = capsys.readouterr().err
        assert code == 0, err[-3000:]
        assert "server stopped" not in err and f"the server at {address} keeps running" in err
        with RnnClient(address, timeout=10) as client:  # and it does
            assert client.health() == "serving"
    finally:
        server.drain(2)
