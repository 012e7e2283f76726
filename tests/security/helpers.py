"""Shared by the security, fuzz and crash tests: tiny saved models, certificates, servers, a call per RPC.

Models are built and saved directly with the engine (no training run), so a fixture costs milliseconds; they
are untrained but complete, loadable models, which is all the boundary tests need.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import model_service_pb2 as mpb
from rnn.v1 import training_service_pb2 as tpb
from tests.server.helpers import Stubs

ADMIN_TOKEN = "admin-token-0123456789abcdef"
INFER_TOKEN = "infer-token-0123456789abcdef"
LM_TEXT = "the cat sat on the mat. the dog sat on the log. " * 4
SERIES = "t,value\n" + "\n".join(f"{t},{math.sin(t / 3):.4f}" for t in range(60))


# ---------------------------------------------------------------------------------------------- models
def save_tiny_models(model_dir: Path, names: tuple[str, ...] = ("lm", "clf", "fc")) -> dict[str, Path]:
    """Save an untrained char-GRU language model ("lm"), LSTM classifier ("clf") and forecaster ("fc")."""
    from rnn_engine.checkpoint import save_model
    from rnn_engine.config import ModelConfig
    from rnn_engine.model import Model
    from rnn_engine.tokenizers import CharTokenizer

    tok = CharTokenizer.fit([LM_TEXT])
    small = dict(hidden_size=8, embedding_dim=4, seed=1)
    made = {
        "lm": lambda: Model(ModelConfig(task="language_model", cell="gru", **small), tokenizer=tok),
        "clf": lambda: Model(ModelConfig(task="classification", cell="lstm", **small), tokenizer=tok,
                             labels=["animal", "thing"]),
        "fc": lambda: Model(ModelConfig(task="forecasting", cell="lstm", hidden_size=8, window=6, seed=1),
                            norm={"mean": [0.0], "std": [1.0]}),
    }
    paths = {}
    for name in names:
        model = made[name]()
        model.trained = True
        paths[name] = Path(save_model(model, Path(model_dir) / name) or Path(model_dir) / name)
    return paths


# ---------------------------------------------------------------------------------------------- servers
def start_server(model_dir: Path, **overrides: Any):
    """An in-process server on 127.0.0.1:0 without the metrics endpoint; returns (server, port)."""
    from server import ServerConfig, create_server

    config = ServerConfig(port=0, model_dir=Path(model_dir), metrics_port=0, **overrides)
    server, port = create_server(config)
    server.start()
    return server, port


def write_tokens(path: Path) -> str:
    """A tokens file with one admin and one inference token; returns its path."""
    path.write_text(f"# test tokens\nadmin:{ADMIN_TOKEN}\ninference:{INFER_TOKEN}\n")
    return str(path)


# ------------------------------------------------------------------------------------------- a call per RPC
@dataclass(frozen=True)
class Rpc:
    """A well-formed call of one method against the tiny models, and the status an admin gets for it."""

    method: str  # full gRPC method name
    role: str  # "inference" or "admin"
    call: Callable[[Stubs, list | None], Any]  # (stubs, metadata) -> consumed response(s)
    admin_code: grpc.StatusCode = grpc.StatusCode.OK


def _stream(requests):
    return iter(list(requests))


RPCS = [
    Rpc("/rnn.v1.InferenceService/Predict", "inference", lambda s, md: s.inference.Predict(
        ipb.PredictRequest(model="lm", inputs=[pb.SequenceInput(text="the cat")]), metadata=md, timeout=20)),
    Rpc("/rnn.v1.InferenceService/PredictStream", "inference", lambda s, md: list(s.inference.PredictStream(
        _stream([ipb.PredictStreamRequest(model="lm", sequence_id="a", start=True, end=True,
                                          chunk=pb.SequenceInput(text="the"))]), metadata=md, timeout=20))),
    Rpc("/rnn.v1.InferenceService/StreamGenerate", "inference", lambda s, md: list(s.inference.StreamGenerate(
        ipb.StreamGenerateRequest(model="lm", prompt="the", max_new_tokens=3, seed=1), metadata=md,
        timeout=20))),
    Rpc("/rnn.v1.ModelService/ListModels", "inference",
        lambda s, md: s.models.ListModels(mpb.ListModelsRequest(), metadata=md, timeout=20)),
    Rpc("/rnn.v1.ModelService/GetModel", "inference",
        lambda s, md: s.models.GetModel(mpb.GetModelRequest(model="lm"), metadata=md, timeout=20)),
    Rpc("/rnn.v1.ModelService/DeleteModel", "admin",
        lambda s, md: s.models.DeleteModel(mpb.DeleteModelRequest(model="ghost"), metadata=md, timeout=20),
        grpc.StatusCode.NOT_FOUND),
    Rpc("/rnn.v1.ModelService/ExportOnnx", "admin", lambda s, md: list(s.models.ExportOnnx(
        mpb.ExportOnnxRequest(model="lm"), metadata=md, timeout=60))),
    Rpc("/rnn.v1.TrainingService/Train", "admin", lambda s, md: list(s.training.Train(
        tpb.TrainRequest(model="", task=pb.TASK_LANGUAGE_MODEL), metadata=md, timeout=20)),
        grpc.StatusCode.INVALID_ARGUMENT),
    Rpc("/rnn.v1.TrainingService/WatchJob", "admin", lambda s, md: list(s.training.WatchJob(
        tpb.WatchJobRequest(job_id="job-000000000000"), metadata=md, timeout=20)), grpc.StatusCode.NOT_FOUND),
    Rpc("/rnn.v1.TrainingService/GetJob", "admin",
        lambda s, md: s.training.GetJob(tpb.GetJobRequest(job_id="job-000000000000"), metadata=md,
                                        timeout=20),
        grpc.StatusCode.NOT_FOUND),
    Rpc("/rnn.v1.TrainingService/ListJobs", "admin",
        lambda s, md: s.training.ListJobs(tpb.ListJobsRequest(), metadata=md, timeout=20)),
    Rpc("/rnn.v1.TrainingService/CancelJob", "admin", lambda s, md: s.training.CancelJob(
        tpb.CancelJobRequest(job_id="job-000000000000"), metadata=md, timeout=20), grpc.StatusCode.NOT_FOUND),
    Rpc("/rnn.v1.TrainingService/UploadDataset", "admin", lambda s, md: s.training.UploadDataset(_stream([
        tpb.UploadDatasetRequest(info=tpb.DatasetInfo(name="t")), tpb.UploadDatasetRequest(chunk=b"abc")]),
        metadata=md, timeout=20)),
]


def status_of(rpc: Rpc, stubs: Stubs, metadata: list | None) -> grpc.StatusCode:
    """The status code the call ends with (OK when it succeeds)."""
    try:
        rpc.call(stubs, metadata)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def bearer(token: str | None) -> list | None:
    return [("authorization", f"Bearer {token}")] if token else None


# ---------------------------------------------------------------------------------------------- certificates
def make_cert(name: str, issuer=None, *, ca: bool = False,
              expired: bool = False) -> tuple[Any, Any, bytes, bytes]:
    """(key, cert, cert PEM, key PEM); `issuer` is (key, cert) of the signing CA, None for self-signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    start, end = ((now - dt.timedelta(days=10), now - dt.timedelta(days=1)) if expired
                  else (now - dt.timedelta(minutes=5), now + dt.timedelta(days=1)))
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer[1].subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(issuer[0] if issuer else key, hashes.SHA256())
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key, cert, cert.public_bytes(serialization.Encoding.PEM), pem_key


def make_pki(directory: Path) -> dict[str, str]:
    """PEM files: ca, other_ca, server (srv/srv_key), expired server (old/old_key), clients signed by the CA
    (cli/cli_key), by another CA (rogue/rogue_key) and an expired client (old_cli/old_cli_key)."""
    ca_key, ca_cert, ca_pem, _ = make_cert("test-ca", ca=True)
    other_key, other_cert, other_pem, _ = make_cert("other-ca", ca=True)
    ca, other = (ca_key, ca_cert), (other_key, other_cert)
    pems = {"ca": ca_pem, "other_ca": other_pem}
    for prefix, name, issuer, expired in (("srv", "localhost", ca, False), ("old", "localhost", ca, True),
                                          ("cli", "client", ca, False), ("rogue", "client", other, False),
                                          ("old_cli", "client", ca, True)):
        _, _, cert_pem, key_pem = make_cert(name, issuer, expired=expired)
        pems[prefix], pems[f"{prefix}_key"] = cert_pem, key_pem
    for name, data in pems.items():
        (directory / f"{name}.pem").write_bytes(data)
    return {name: str(directory / f"{name}.pem") for name in pems}
