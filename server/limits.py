"""Server limits on what one request may ask for: model size, training batches, prompts, stop sequences, data.

Each refusal is RESOURCE_EXHAUSTED naming the limit (the flag's name without dashes, e.g. `max_batch_size`)
and the request field, so a client can tell which knob it hit. The limits that live next to the code they
guard (message size in the gRPC options, Predict batches in predict_io.py, streams in interceptor.py, uploads
in uploads.py, running and queued jobs in jobs.py) use the same error shape.
"""

from __future__ import annotations

from typing import Any

import grpc

from .errors import ServiceError

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
ASSUMED_VOCAB = 1024  # the vocabulary is only known after reading the data; estimates assume this many tokens
MAX_STOP_SEQUENCES = 32  # StreamGenerate stop sequences per request


def over_limit(field: str, got: int, limit_name: str, limit: int, what: str = "") -> ServiceError:
    """RESOURCE_EXHAUSTED: `field` asks for `got` (of `what`), more than the server limit `limit_name`."""
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"{field}: {got}{' ' + what if what else ''} is more than the server limit "
                        f"{limit_name}={limit}", field=field, reason="LIMIT_EXCEEDED",
                        metadata={"limit": limit_name, "limit_value": str(limit)})


def estimated_parameters(model_config: dict[str, Any]) -> int:
    """Recurrent parameters plus embedding and head for ASSUMED_VOCAB tokens (of a ModelConfig.to_dict()).

    A closed form (layers after the first all see the same input width), so refusing a model of 2**31
    layers costs as little as accepting a small one."""
    hidden, layers = int(model_config["hidden_size"]), int(model_config["num_layers"])
    dirs = 2 if model_config.get("bidirectional") else 1
    gates = GATES.get(model_config.get("cell", "lstm"), 4)
    forecasting = model_config.get("task") == "forecasting"
    width = 1 if forecasting else int(model_config["embedding_dim"])
    total = 0 if forecasting else ASSUMED_VOCAB * width
    if layers >= 1:
        per_cell = dirs * gates * hidden
        total += per_cell * (width + hidden + 2) + (layers - 1) * per_cell * (dirs * hidden + hidden + 2)
        width = dirs * hidden
    return total + (width + 1) * ASSUMED_VOCAB


def check_training(model_config: dict[str, Any], train_config: dict[str, Any], config) -> None:
    """Refuse a Train request whose model or batches exceed the server limits (config: ServerConfig)."""
    params = estimated_parameters(model_config)
    if params > config.max_model_parameters:
        raise over_limit("spec", params, "max_model_parameters", config.max_model_parameters,
                         "parameters (estimated from hidden_size, num_layers, embedding_dim)")
    if train_config["batch_size"] > config.max_batch_size:
        raise over_limit("training.batch_size", train_config["batch_size"], "max_batch_size",
                         config.max_batch_size, "sequences")
    steps = (("training.seq_len", train_config["bptt"]), ("spec.extra.window", model_config["window"]))
    for field, value in steps:
        if value > config.max_sequence_length:
            raise over_limit(field, value, "max_sequence_length", config.max_sequence_length, "steps")


def check_dataset_size(field: str, size: int, config) -> None:
    """Inline datasets obey the same size limit as uploads."""
    if size > config.max_upload_bytes:
        raise over_limit(field, size, "max_upload_bytes", config.max_upload_bytes, "bytes")


def check_prompt(model, prompt: str, stop_sequences, config) -> None:
    """A StreamGenerate prompt is at most max_sequence_length tokens; stop sequences are few and short."""
    limit = config.max_sequence_length
    if model.tokenizer is not None and len(prompt) > limit // 4:  # shorter prompts cannot reach the limit
        n = len(model.tokenizer.encode(prompt))
        if n > limit:
            raise over_limit("prompt", n, "max_sequence_length", limit, "tokens")
    if len(stop_sequences) > MAX_STOP_SEQUENCES:
        raise over_limit("stop_sequences", len(stop_sequences), "max_stop_sequences", MAX_STOP_SEQUENCES,
                         "sequences")
    for i, stop in enumerate(stop_sequences):
        if len(stop) > limit:
            raise over_limit(f"stop_sequences[{i}]", len(stop), "max_sequence_length", limit, "characters")
