"""InferenceService: Predict (batch), PredictStream (stateful chunks), StreamGenerate (token stream)."""

from __future__ import annotations

import functools
import itertools
import threading
import time

from rnn.v1 import common_pb2 as pb
from rnn.v1 import inference_service_pb2 as ipb
from rnn.v1 import inference_service_pb2_grpc as ipb_grpc
from rnn_engine.config import GenerationConfig
from rnn_engine.errors import InvalidInput
from rnn_engine.generation.records import GenerationEnd

from .. import limits, predict_io
from ..batching.records import generation_records
from ..convert import TASK_ENUMS
from ..errors import abort, handle_errors, invalid, with_field_prefix
from ..state import ServerState

_stream_ids = itertools.count(1)
GENERATION_FIELDS = (
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "seed",
    "beam_size",
)


class InferenceServicer(ipb_grpc.InferenceServiceServicer):
    def __init__(self, state: ServerState) -> None:
        self.state = state

    @handle_errors
    def Predict(self, request, context):
        model = self.state.model(request.model)
        output, k = predict_io.output_plan(model, request.output, request.top_k)
        cfg = self.state.config
        inputs = predict_io.batch_inputs(
            model, request.inputs, max_batch=cfg.max_batch_size, max_len=cfg.max_sequence_length
        )
        if output == pb.OUTPUT_KIND_LOG_LIKELIHOOD:
            results = model.score(inputs)
        else:
            results = self._predict(request.model, model, inputs, k, _deadline(context))
        return ipb.PredictResponse(
            model=request.model,
            task=TASK_ENUMS[model.task],
            outputs=[predict_io.sequence_output(model, r, output) for r in results],
        )

    def PredictStream(self, request_iterator, context):
        stream = next(_stream_ids)
        try:
            for request in request_iterator:
                try:
                    yield self._chunk(stream, request)
                except Exception as exc:  # noqa: BLE001 - mapped (and the stream ended) by abort()
                    abort(context, exc)
        except Exception:
            if context.is_active():  # a failure of ours (abort raises here too); not a client hang-up
                raise
        finally:
            self.state.sequences.close_stream(stream)

    def _chunk(self, stream: int, request) -> ipb.PredictStreamResponse:
        seqs = self.state.sequences
        if not request.sequence_id:
            raise invalid("sequence_id", "expected a non-empty sequence id")
        if request.start:
            model = self.state.model(request.model)
            seq = seqs.open(stream, request.sequence_id, request.model, model, model.initial_state(1))
        else:
            seq = seqs.get(stream, request.sequence_id)
            if request.model and request.model != seq.model_name:
                raise invalid(
                    "model",
                    f"sequence {request.sequence_id!r} uses model {seq.model_name!r}, got {request.model!r}",
                )
        with seq.lock:
            response = self._feed(seq, request)
        if request.end:
            seqs.release(stream, request.sequence_id)
        return response

    def _feed(self, seq, request) -> ipb.PredictStreamResponse:
        model = seq.model
        if request.reset:
            seq.state, seq.steps_seen = model.initial_state(1), 0
        output, k = predict_io.output_plan(model, request.output, request.top_k, streaming=True)
        chunk = predict_io.sequence_input(
            model, request.chunk, "chunk", self.state.config.max_sequence_length, allow_empty=True
        )
        out = None
        if chunk:
            if seq.steps_seen + _steps(model, chunk) > self.state.config.max_sequence_length:
                raise predict_io.too_long(
                    "chunk", seq.steps_seen + _steps(model, chunk), self.state.config.max_sequence_length
                )
            result, seq.state = self._predict_chunk(seq.model_name, model, chunk, seq.state, k)
            out = predict_io.sequence_output(model, result, output)
            seq.steps_seen += _steps(model, chunk)
        return ipb.PredictStreamResponse(
            sequence_id=request.sequence_id, output=out, steps_seen=seq.steps_seen, ended=request.end
        )

    @handle_errors
    async def StreamGenerate(self, request, context):
        # Served on the event loop (no thread per stream); the start runs in the pool (generation_records).
        stop = threading.Event()
        start = functools.partial(self._start_generation, request, stop.is_set, _deadline(context))
        records = generation_records(start, self.state.executor)
        i = 0
        try:
            async for record in records:
                if isinstance(record, GenerationEnd):
                    yield predict_io.summary_to_pb(record)
                    return
                yield predict_io.token_to_pb(record, i)
                i += 1
        finally:
            stop.set()  # however the call ends, a batched generation leaves its batch
            if i:  # counted once per call, not per token (a labelled counter takes a lock)
                self.state.metrics.tokens.labels(request.model).inc(i)
            await records.aclose()

    def _start_generation(self, request, should_stop, deadline: float | None):
        """The records of the requested generation (a batched TokenStream or Model.generate's generator)."""
        model = self.state.model(request.model)
        limits.check_prompt(model, request.prompt, request.stop_sequences, self.state.config)
        config = self._generation_config(request)
        prompt = self._prompt(model, request)
        if self.state.batching is not None and model.task != "forecasting":  # continuous batching
            return self.state.batching.generate(request.model, model, prompt, config, should_stop, deadline)
        return model.generate(prompt, config, should_stop=should_stop)

    def _prompt(self, model, request):
        """The prompt text, or for a forecaster the series in prompt_values."""
        has_values = request.HasField("prompt_values")
        if model.task != "forecasting":
            if has_values:
                raise invalid("prompt_values", f"a {model.task} model takes a text prompt, not values")
            return request.prompt
        if request.prompt:
            raise invalid("prompt", "a forecasting model continues prompt_values, not a text prompt")
        return predict_io.forecast_prompt(model, request.prompt_values, self.state.config.max_sequence_length)

    def _predict(self, name: str, model, inputs: list, k: int, deadline: float | None) -> list:
        if self.state.batching is None:
            return model.predict(inputs, top_k=k)
        return self.state.batching.predict(name, model, inputs, k, deadline)

    def _predict_chunk(self, name: str, model, chunk, state: dict, k: int) -> tuple[dict, dict]:
        if self.state.batching is None:
            results, state = model.predict_chunk([chunk], state, top_k=k)
            return results[0], state
        return self.state.batching.predict_chunk(name, model, chunk, state, k)

    def _generation_config(self, request) -> GenerationConfig:
        settings = {name: getattr(request, name) for name in GENERATION_FIELDS if request.HasField(name)}
        limit = self.state.config.max_new_tokens
        if settings.get("max_new_tokens", 0) > limit:
            n = settings["max_new_tokens"]
            raise limits.over_limit("max_new_tokens", n, "max_new_tokens", limit, "tokens")
        settings.setdefault("max_new_tokens", min(GenerationConfig().max_new_tokens, limit))
        settings["stop"] = list(request.stop_sequences)
        if request.label:
            settings["label"] = request.label
        try:
            return GenerationConfig.from_dict(settings)
        except InvalidInput as exc:
            raise with_field_prefix(exc, "", {"stop": "stop_sequences"}) from None


def _deadline(context) -> float | None:
    """The call's deadline as a time.monotonic() instant (None without one)."""
    remaining = context.time_remaining()  # grpc gives a huge number when the call has no deadline
    return None if remaining is None or remaining > 1e6 else time.monotonic() + remaining


def _steps(model, chunk) -> int:
    """Steps in one chunk: values/rows for forecasting, tokens otherwise."""
    if model.task == "forecasting" or isinstance(chunk, list):
        return len(chunk)
    return len(model.tokenizer.encode(chunk))
