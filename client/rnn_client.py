"""RnnClient: the typed Python client of rnn-service; plain Python values in, plain values out."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rnn.v1 import (
    common_pb2,
    inference_service_pb2,
    inference_service_pb2_grpc,
    model_service_pb2,
    model_service_pb2_grpc,
    training_service_pb2,
    training_service_pb2_grpc,
)

from . import convert, types
from .credentials import make_channel
from .errors import InvalidArgument, translate_errors, translate_stream
from .files import atomic_write, receive_chunks
from .predict_stream import PredictSession

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
INLINE_DATA_BYTES = 4 * 1024 * 1024  # larger training files go through UploadDataset
UPLOAD_CHUNK_BYTES = 1024 * 1024
GRAPHS = ("full", "step", "encoder", "decoder_step")
FORMAT_BY_SUFFIX = {".txt": "text", ".text": "text", ".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{what}: expected a non-empty str, got {value!r}")
    return value


def _check_int(what: str, value: Any, minimum: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise InvalidArgument(f"{what}: expected an int >= {minimum}, got {value!r}")


class RnnClient:
    """A connection to an rnn-service server.

    Args:
        address: "host:port" of the server.
        timeout: deadline in seconds for unary calls and exports (None: no deadline). Streams of training
            events and generated tokens are not limited unless a call passes its own `timeout`.
        token: bearer token sent on every call (the server's `admin` or `inference` role).
        tls: use TLS (implied by any PEM file); ca_file: roots to trust (default: the system's);
            cert_file/key_file: a client certificate for mutual TLS.

    Examples:
        >>> with RnnClient("127.0.0.1:50051") as c:
        ...     for ev in c.train("shakespeare", text=open("tiny.txt").read(), max_steps=200): print(ev.loss)
        ...     print("".join(t.text for t in c.generate("shakespeare", "ROMEO:") if hasattr(t, "id")))
    """

    def __init__(self, address: str, *, timeout: float | None = None, token: str | None = None,
                 tls: bool = False, ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> None:
        _check_name("address", address)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or timeout <= 0):
            raise InvalidArgument(f"timeout: expected a number of seconds > 0 or None, got {timeout!r}")
        self.address = address
        self.timeout = timeout
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        self._channel = make_channel(address, options, token=token, tls=tls, ca_file=ca_file,
                                     cert_file=cert_file, key_file=key_file)
        self._training = training_service_pb2_grpc.TrainingServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._inference = inference_service_pb2_grpc.InferenceServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RnnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @translate_errors
    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status of `service` ("" = the whole server): "serving", "not_serving", ..."""
        resp = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status).lower()

    # -- training -------------------------------------------------------------------------------------------
    def train(self, model: str, *, task: str = "language_model", path: str | os.PathLike | None = None,
              text: str | None = None, dataset_id: str | None = None, data_format: str | None = None,
              data_options: Mapping[str, Any] | None = None, cell: str | None = None,
              hidden_size: int | None = None, num_layers: int | None = None,
              bidirectional: bool | None = None,
              dropout: float | None = None, embedding_dim: int | None = None, tokenizer: str | None = None,
              model_options: Mapping[str, Any] | None = None, epochs: int | None = None,
              max_steps: int | None = None, batch_size: int | None = None, learning_rate: float | None = None,
              optimizer: str | None = None, weight_decay: float | None = None,
              clip_grad_norm: float | None = None, seq_len: int | None = None, seed: int | None = None,
              validation_fraction: float | None = None, checkpoint_every: int | None = None,
              training_options: Mapping[str, Any] | None = None, overwrite: bool = False,
              resume_job_id: str | None = None, timeout: float | None = None) -> Iterator[types.JobEvent]:
        """Start training `model` and iterate over the job's events until it ends.

        The data is exactly one of `path` (a local file; large files are uploaded first; its format is
        taken from the suffix .txt/.tsv/.csv/.jsonl unless `data_format` says), `text`, or the
        `dataset_id` of an earlier `upload_dataset`. Unset settings take the engine's defaults; anything not
        named here goes in `model_options` / `training_options` by its rnn_engine.config field name.
        Leaving the iteration early does not stop the job (use `cancel_job(event.job_id)`).
        """
        req = training_service_pb2.TrainRequest(overwrite=bool(overwrite))
        if resume_job_id is not None:
            req.resume_job_id = _check_name("resume_job_id", resume_job_id)
        else:
            req.model = _check_name("model", model)
            req.task = convert.task_value(task)
            req.dataset.CopyFrom(self._dataset_source(path, text, dataset_id, data_format, data_options))
            req.spec.CopyFrom(convert.model_spec(cell, {
                "hidden_size": hidden_size, "num_layers": num_layers, "bidirectional": bidirectional,
                "dropout": dropout, "embedding_dim": embedding_dim, "tokenizer": tokenizer}, model_options))
            req.training.CopyFrom(convert.training_settings({
                "epochs": epochs, "max_steps": max_steps, "batch_size": batch_size,
                "learning_rate": learning_rate, "optimizer": optimizer, "weight_decay": weight_decay,
                "clip_grad_norm": clip_grad_norm, "seq_len": seq_len, "seed": seed,
                "validation_fraction": validation_fraction, "checkpoint_every": checkpoint_every},
                training_options))
        call = self._training.Train(req, timeout=timeout)
        return self._events(call)

    def _dataset_source(self, path: Any, text: str | None, dataset_id: str | None, data_format: str | None,
                        data_options: Mapping[str, Any] | None) -> Any:
        sources = (("path", path), ("text", text), ("dataset_id", dataset_id))
        given = [name for name, v in sources if v is not None]
        if len(given) != 1:
            raise InvalidArgument(f"data: expected exactly one of path, text or dataset_id, "
                                  f"got {given or 'none'}")
        if path is not None and data_format is None:
            data_format = FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())
        src = training_service_pb2.DatasetSource(format=convert.dataset_format(data_format))
        if data_options:
            src.options.update(dict(data_options))
        if text is not None:
            if not isinstance(text, str) or not text:
                raise InvalidArgument(f"text: expected a non-empty str, got {text!r}")
            src.text = text
        elif dataset_id is not None:
            src.dataset_id = _check_name("dataset_id", dataset_id)
        else:
            file = Path(path)
            if not file.is_file():
                raise InvalidArgument(f"path: expected an existing file, got {str(path)!r}")
            if file.stat().st_size > INLINE_DATA_BYTES:
                src.dataset_id = self.upload_dataset(file, data_format=data_format).dataset_id
            else:
                src.content = file.read_bytes()
        return src

    @staticmethod
    def _events(call: Any) -> Iterator[types.JobEvent]:
        try:
            for resp in translate_stream(call):
                yield convert.job_event(resp.event)
        finally:
            call.cancel()  # stop receiving (a no-op when the stream already ended); the job keeps running

    def watch_job(self, job_id: str, *, from_sequence: int = 0,
                  timeout: float | None = None) -> Iterator[types.JobEvent]:
        """Replay a job's events from `from_sequence`, then follow live ones until the job ends."""
        _check_int("from_sequence", from_sequence, 0)
        req = training_service_pb2.WatchJobRequest(job_id=_check_name("job_id", job_id),
                                                   from_sequence=from_sequence)
        return self._events(self._training.WatchJob(req, timeout=timeout))

    @translate_errors
    def get_job(self, job_id: str) -> types.Job:
        req = training_service_pb2.GetJobRequest(job_id=_check_name("job_id", job_id))
        return convert.job(self._training.GetJob(req, timeout=self.timeout).job)

    @translate_errors
    def list_jobs(self, *, state: str | None = None, model: str | None = None) -> list[types.Job]:
        """All jobs (newest first), optionally only those in `state` or training `model`."""
        req = training_service_pb2.ListJobsRequest(model=model or "")
        if state is not None:
            req.state = convert.enum_value(common_pb2.JobState, state, "JOB_STATE_", "state")
        jobs: list[types.Job] = []
        while True:
            resp = self._training.ListJobs(req, timeout=self.timeout)
            jobs += [convert.job(j) for j in resp.jobs]
            if not resp.next_page_token:
                return jobs
            req.page_token = resp.next_page_token

    @translate_errors
    def cancel_job(self, job_id: str) -> types.Job:
        """Ask a job to stop (it writes a checkpoint and ends "cancelled"); returns the job as it is now."""
        req = training_service_pb2.CancelJobRequest(job_id=_check_name("job_id", job_id))
        return convert.job(self._training.CancelJob(req, timeout=self.timeout).job)

    @translate_errors
    def upload_dataset(self, path: str | os.PathLike, *, name: str | None = None,
                       data_format: str | None = None) -> types.UploadedDataset:
        """Stream a local file to the server in chunks; returns the id to train on."""
        file = Path(path)
        if not file.is_file():
            raise InvalidArgument(f"path: expected an existing file, got {str(path)!r}")
        size = file.stat().st_size
        info = training_service_pb2.DatasetInfo(name=name or file.name, size_bytes=size,
                                                format=convert.dataset_format(data_format))

        def parts() -> Iterator[Any]:
            yield training_service_pb2.UploadDatasetRequest(info=info)
            with file.open("rb") as f:
                while chunk := f.read(UPLOAD_CHUNK_BYTES):
                    yield training_service_pb2.UploadDatasetRequest(chunk=chunk)

        resp = self._training.UploadDataset(parts(), timeout=self.timeout)
        return types.UploadedDataset(resp.dataset_id, resp.size_bytes, resp.sha256)

    # -- models ---------------------------------------------------------------------------------------------
    @translate_errors
    def list_models(self, *, task: str | None = None) -> list[types.ModelInfo]:
        req = model_service_pb2.ListModelsRequest()
        if task is not None:
            req.task = convert.task_value(task)
        models: list[types.ModelInfo] = []
        while True:
            resp = self._models.ListModels(req, timeout=self.timeout)
            models += [convert.model_info(m) for m in resp.models]
            if not resp.next_page_token:
                return models
            req.page_token = resp.next_page_token

    @translate_errors
    def get_model(self, model: str) -> types.ModelInfo:
        req = model_service_pb2.GetModelRequest(model=_check_name("model", model))
        return convert.model_info(self._models.GetModel(req, timeout=self.timeout).model)

    @translate_errors
    def delete_model(self, model: str) -> str:
        req = model_service_pb2.DeleteModelRequest(model=_check_name("model", model))
        return self._models.DeleteModel(req, timeout=self.timeout).model

    def export_onnx(self, model: str, path: str | os.PathLike, *, graph: str = "full") -> types.ExportedModel:
        """Write the model's ONNX file to `path` atomically: a temp file in the same directory, checked
        (offsets, size, SHA-256) and renamed; on any error no file (partial or temp) is left behind."""
        _check_name("model", model)
        if graph not in GRAPHS:
            raise InvalidArgument(f"graph: expected one of {list(GRAPHS)}, got {graph!r}")
        target = Path(path)
        if not target.parent.is_dir():
            raise InvalidArgument(f"path: expected a file in an existing directory, got {str(path)!r}")
        req = model_service_pb2.ExportOnnxRequest(
            model=model, graph=model_service_pb2.OnnxGraph.Value("ONNX_GRAPH_" + graph.upper()))
        with atomic_write(target) as f:
            size, digest = receive_chunks(self._models.ExportOnnx(req, timeout=self.timeout), f)
        return types.ExportedModel(str(target), size, digest)

    # -- inference ------------------------------------------------------------------------------------------
    @translate_errors
    def predict(self, model: str, sequences: Sequence[Any], *, top_k: int = 1,
                output: str | None = None) -> list[types.Prediction]:
        """Predict a batch of sequences of different lengths; one Prediction per sequence, in order.

        Each sequence is a str (text), a 1-D list/array of ints (token ids), or floats of shape (T,) or
        (T, F) (forecasting). `output`: "top_k" | "distribution" | "values" | "log_likelihood" (language
        models: `log_probs`, `log_likelihood`, `perplexity` of each text; None: the task's natural output).
        """
        _check_name("model", model)
        if isinstance(sequences, str | bytes) or not isinstance(sequences, Sequence) or not sequences:
            raise InvalidArgument(f"sequences: expected a non-empty list of sequences, got {sequences!r:.80}")
        _check_int("top_k", top_k, 1)
        inputs = [convert.sequence_input(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
        req = inference_service_pb2.PredictRequest(model=model, inputs=inputs, top_k=top_k,
                                                   output=convert.output_kind(output))
        resp = self._inference.Predict(req, timeout=self.timeout)
        task = convert.task_name(resp.task)
        return [convert.prediction(o, task) for o in resp.outputs]

    def predict_stream(self, model: str, *, top_k: int = 1, output: str | None = None,
                       timeout: float | None = None) -> PredictSession:
        """Open a stateful streaming session (see PredictSession); use it as a context manager."""
        _check_int("top_k", top_k, 1)
        return PredictSession(self._inference, model, top_k=top_k, output=output, timeout=timeout)

    def generate(self, model: str, prompt: str | Sequence[float] | np.ndarray = "", *,
                 max_new_tokens: int | None = None,
                 temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                 repetition_penalty: float | None = None, stop: Sequence[str] = (), seed: int | None = None,
                 label: str | None = None, beam_size: int | None = None,
                 timeout: float | None = None) -> Iterator[types.GeneratedToken | types.GenerationFinish]:
        """Stream tokens from a language model as they are sampled, then one GenerationFinish record.

        `prompt` is the text to continue (language models), the source text (seq2seq), an optional prefix
        (one-to-many), or for forecasting models the series to continue (floats; each token has a `value`).

        `label` conditions one-to-many models (the prompt is then ignored); `beam_size` > 1 asks seq2seq
        models for beam search. Stopping the iteration early (break, close()) cancels the generation.
        """
        _check_name("model", model)
        _check_int("max_new_tokens", max_new_tokens, 1)
        _check_int("top_k", top_k, 0)
        _check_int("seed", seed, 0)
        _check_int("beam_size", beam_size, 1)
        if label is not None and not isinstance(label, str):
            raise InvalidArgument(f"label: expected a str, got {type(label).__name__}")
        if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
            raise InvalidArgument(f"stop: expected a list of non-empty strings, got {stop!r}")
        req = convert.generate_request(model, prompt, {
            "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p,
            "repetition_penalty": repetition_penalty, "seed": seed, "beam_size": beam_size}, stop, label)
        return self._generation(self._inference.StreamGenerate(req, timeout=timeout))

    @staticmethod
    def _generation(call: Any) -> Iterator[types.GeneratedToken | types.GenerationFinish]:
        try:
            for resp in translate_stream(call):
                yield convert.generation_event(resp)
        finally:
            call.cancel()
