"""PredictSession: a stateful PredictStream call where each chunk of a sequence is answered in turn."""

from __future__ import annotations

import queue
import threading
from typing import Any

import grpc

from rnn.v1 import inference_service_pb2

from . import convert
from .errors import InvalidArgument, from_rpc_error
from .types import StreamResult

_CLOSE = object()


class PredictSession:
    """Send sequences chunk by chunk; the server keeps each sequence's state between chunks.

    Examples:
        >>> with client.predict_stream("tagger") as s:
        ...     s.send("a", "the quick")          # first chunk starts sequence "a"
        ...     s.send("a", " brown fox", end=True)
    """

    def __init__(self, stub: Any, model: str, *, top_k: int = 1, output: str | None = None,
                 timeout: float | None = None) -> None:
        if not isinstance(model, str) or not model:
            raise InvalidArgument(f"model: expected a non-empty model name, got {model!r}")
        self.model = model
        self._top_k = top_k
        self._output = convert.output_kind(output)
        self._requests: queue.Queue[Any] = queue.Queue()
        self._open: set[str] = set()
        self._lock = threading.Lock()
        self._call = stub.PredictStream(iter(self._requests.get, _CLOSE), timeout=timeout)
        self._closed = False

    def send(self, sequence_id: str, chunk: Any = None, *, start: bool | None = None, end: bool = False,
             reset: bool = False, top_k: int | None = None) -> StreamResult:
        """Send the next chunk of `sequence_id` and wait for its outputs.

        Args:
            sequence_id: your name for the sequence; its first chunk starts it (or pass start=True to
                restart it with a fresh state).
            chunk: text, token ids or float values (see RnnClient.predict); None for a control message.
            end: release the sequence after this chunk. reset: zero its state before this chunk.
        """
        if self._closed:
            raise InvalidArgument("session: expected an open session, got one that was closed")
        if not isinstance(sequence_id, str) or not sequence_id:
            raise InvalidArgument(f"sequence_id: expected a non-empty str, got {sequence_id!r}")
        k = self._top_k if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidArgument(f"top_k: expected an int >= 1, got {k!r}")
        with self._lock:
            if start is None:
                start = sequence_id not in self._open
            req = inference_service_pb2.PredictStreamRequest(
                model=self.model if start else "", sequence_id=sequence_id, start=start, end=end,
                reset=reset, top_k=k, output=self._output)
            if chunk is not None:
                req.chunk.CopyFrom(convert.sequence_input(chunk, "chunk"))
            self._requests.put(req)
            try:
                resp = next(self._call)
            except grpc.RpcError as e:
                self._closed = True
                raise from_rpc_error(e) from e
            except StopIteration:
                self._closed = True
                raise InvalidArgument("session: the server closed the stream") from None
            self._open.add(sequence_id)
            if resp.ended:
                self._open.discard(sequence_id)
        return StreamResult(sequence_id=resp.sequence_id, prediction=convert.prediction(resp.output),
                            steps_seen=resp.steps_seen, ended=resp.ended)

    def reset(self, sequence_id: str) -> StreamResult:
        """Return `sequence_id` to the model's initial state."""
        return self.send(sequence_id, None, reset=True)

    def end(self, sequence_id: str) -> StreamResult:
        """Release `sequence_id` on the server."""
        return self.send(sequence_id, None, end=True)

    def close(self) -> None:
        """Finish the stream (open sequences are released by the server)."""
        if not self._closed:
            self._closed = True
            self._requests.put(_CLOSE)
            try:
                for _ in self._call:
                    pass
            except grpc.RpcError:
                pass

    def __enter__(self) -> PredictSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
