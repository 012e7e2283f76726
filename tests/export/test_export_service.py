"""Export end to end: a saved model, the ExportOnnx RPC of an in-process server on port 0, RnnClient writing
the file. The file equals `export_model` locally; failures leave no file behind."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

from rnn_engine.checkpoint import save_model
from rnn_engine.onnx_export import export_model
from tests.export.model_cases import make_model, session

pytest.importorskip("grpc", reason="the service path needs grpcio")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(client, {name: Model}) of a server whose model directory holds a language and a seq2seq model."""
    from client.rnn_client import RnnClient
    from server import ServerConfig, create_server

    root = tmp_path_factory.mktemp("export_service")
    models = {"lm": make_model("language_model", "lstm"), "s2s": make_model("seq2seq", "gru")}
    for name, model in models.items():
        model.trained = True
        save_model(model, root / "models" / name)
    server, port = create_server(ServerConfig(port=0, model_dir=root / "models", metrics_port=0))
    server.start()
    yield RnnClient(f"127.0.0.1:{port}", timeout=60), models
    server.drain(1)


@pytest.mark.parametrize("name,graph", [("lm", "full"), ("lm", "step"), ("s2s", "encoder"),
                                        ("s2s", "decoder_step")])
def test_exported_file_equals_local_export(service, tmp_path, name, graph):
    client, models = service
    result = client.export_onnx(name, tmp_path / f"{name}.onnx", graph=graph)
    received = onnx.load(result.path)
    local = export_model(models[name], graph)
    assert received.graph.SerializeToString() == local.graph.SerializeToString()
    assert {p.key: p.value for p in received.metadata_props} == {p.key: p.value for p in local.metadata_props}
    if graph == "step":
        state = {"h": np.zeros((2, 1, 8), np.float32), "c": np.zeros((2, 1, 8), np.float32)}
        logits = session(received).run(None, {"token": np.array([2]), **state})[0]
        assert logits.shape == (1, models[name].tokenizer.vocab_size)


def test_unknown_model_is_not_found_and_writes_nothing(service, tmp_path):
    from client.errors import NotFound

    client, _ = service
    with pytest.raises(NotFound, match="model 'missing' not found"):
        client.export_onnx("missing", tmp_path / "missing.onnx")
    assert os.listdir(tmp_path) == []


def test_graph_the_kind_lacks_is_invalid_and_writes_nothing(service, tmp_path):
    from client.errors import InvalidArgument

    client, _ = service
    with pytest.raises(InvalidArgument, match="graph"):
        client.export_onnx("s2s", tmp_path / "s2s.onnx", graph="step")
    assert os.listdir(tmp_path) == []


def test_unwritable_destination_is_a_clear_error(service, tmp_path):
    from client.errors import InvalidArgument

    client, _ = service
    with pytest.raises(InvalidArgument, match="no-such-dir"):
        client.export_onnx("lm", tmp_path / "no-such-dir" / "lm.onnx")
    assert os.listdir(tmp_path) == []
