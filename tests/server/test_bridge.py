"""server/bridge.py: sync servicer methods served by the grpc.aio server, and the loop thread they share.

A tiny generic service (raw bytes, no protobuf) is registered on a grpc.aio server on the shared loop with the
adapted methods, so each test shows one piece of the sync ServicerContext contract over a real connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from server.batching.generation import TokenStream, wake_readers
from server.bridge import EventLoopThread, adapt_method

SERVICE = "test.Bridge"
marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


class Recorder:
    """What the sync handlers saw, for the test to read after the call."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.done = threading.Event()
        self.first_read = threading.Event()  # the request-stream handler has read its first message
        self.active_after: bool | None = None


def _handlers(rec: Recorder, pool: ThreadPoolExecutor) -> grpc.GenericRpcHandler:
    def unary(request: bytes, context) -> bytes:
        if request == b"abort":
            context.abort_with_status(_status(grpc.StatusCode.FAILED_PRECONDITION, "no way", (("k", "v"),)))
        if request == b"abort-plain":
            context.abort(grpc.StatusCode.NOT_FOUND, "nothing here")
        return request + marker.get().encode() + threading.current_thread().name.encode()[:7]

    def counting(request: bytes, context):
        context.add_callback(lambda: rec.events.append("callback"))
        try:
            for i in range(10_000):
                yield str(i).encode()
                time.sleep(0.005)
        finally:
            rec.active_after = context.is_active()
            rec.events.append("closed")
            rec.done.set()

    def total(requests, context) -> bytes:
        context.add_callback(lambda: rec.events.append("callback"))
        n = 0
        try:
            for message in requests:
                n += len(message)
                rec.first_read.set()
        except grpc.RpcError:
            rec.events.append("read failed")
            rec.active_after = context.is_active()
            rec.done.set()
            raise
        return str(n).encode()

    def adapted(fn, req_stream: bool, resp_stream: bool):
        return adapt_method(fn, pool, req_stream, resp_stream)

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(adapted(unary, False, False)),
        "Counting": grpc.unary_stream_rpc_method_handler(adapted(counting, False, True)),
        "Total": grpc.stream_unary_rpc_method_handler(adapted(total, True, False)),
    })


def _status(code: grpc.StatusCode, details: str, metadata: tuple):
    class Status(grpc.Status):
        pass

    s = Status()
    s.code, s.details, s.trailing_metadata = code, details, metadata
    return s


@pytest.fixture()
def bridge():
    """(recorder, channel) over a grpc.aio server with the adapted test methods; the server stops after."""
    loop = EventLoopThread.shared()
    rec, pool = Recorder(), ThreadPoolExecutor(4, thread_name_prefix="bridged")

    async def build():
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_handlers(rec, pool),))
        port = server.add_insecure_port("127.0.0.1:0")

        async def start_with_marker():
            marker.set("-ctx-")  # what an interceptor sets for the call; must reach the worker thread
            await server.start()

        await start_with_marker()
        return server, port

    server, port = loop.run(build())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield rec, channel
    channel.close()
    loop.run(server.stop(None))
    pool.shutdown(wait=True)


def _method(channel, kind: str, name: str):
    return getattr(channel, kind)(f"/{SERVICE}/{name}")


def test_sync_unary_method_runs_in_the_pool_with_the_calls_context_variables(bridge):
    _, channel = bridge
    reply = _method(channel, "unary_unary", "Unary")(b"hi", timeout=10)
    assert reply.startswith(b"hi") and reply.endswith(b"bridged")
    assert b"-ctx-" in reply  # the call's context variables reached the pool thread (its own would be unset)


def test_abort_with_status_in_a_worker_thread_ends_the_call_with_that_status(bridge):
    _, channel = bridge
    with pytest.raises(grpc.RpcError) as err:
        _method(channel, "unary_unary", "Unary")(b"abort", timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "no way"
    assert ("k", "v") in tuple(err.value.trailing_metadata())
    with pytest.raises(grpc.RpcError) as err:
        _method(channel, "unary_unary", "Unary")(b"abort-plain", timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "nothing here"


def test_cancelled_stream_closes_the_generator_and_runs_callbacks(bridge):
    rec, channel = bridge
    call = _method(channel, "unary_stream", "Counting")(b"", timeout=10)
    assert [next(call) for _ in range(3)] == [b"0", b"1", b"2"]
    call.cancel()
    assert rec.done.wait(5), "the generator was not closed after the client cancelled"
    assert rec.active_after is False  # is_active() said so to the generator's clean-up
    assert "callback" in rec.events and "closed" in rec.events


def test_request_stream_is_read_by_the_worker_thread(bridge):
    _, channel = bridge
    reply = _method(channel, "stream_unary", "Total")(iter([b"ab", b"cde", b""]), timeout=10)
    assert reply == b"5"


def test_cancelled_request_stream_ends_the_blocked_read_with_an_rpc_error(bridge):
    rec, channel = bridge
    release = threading.Event()

    def requests():
        yield b"abc"
        release.wait(10)  # the client sends nothing more: the handler blocks reading

    future = _method(channel, "stream_unary", "Total").future(requests(), timeout=10)
    assert rec.first_read.wait(10), "the handler never read the first message"
    time.sleep(0.1)  # it is now blocked reading the second one
    future.cancel()
    release.set()
    assert rec.done.wait(5), "the handler's read did not end when the call was cancelled"
    assert "read failed" in rec.events and rec.active_after is False


def test_run_from_the_loop_thread_is_refused_instead_of_deadlocking():
    loop = EventLoopThread.shared()

    async def nested():
        probe = asyncio.sleep(0)
        try:
            return loop.run(probe)
        finally:
            probe.close()

    with pytest.raises(RuntimeError, match="deadlock"):
        loop.run(nested(), timeout=5)


def test_async_token_stream_reader_waits_through_a_wake_up_that_brings_nothing():
    loop = EventLoopThread.shared()
    stream = TokenStream(None)

    async def read_two():
        return [await stream.__anext__(), await stream.__anext__()]

    future = asyncio.run_coroutine_threadsafe(read_two(), loop.loop)
    time.sleep(0.05)
    wake_readers([stream])  # a step that held its tokens back (stop-sequence matching) still wakes readers
    time.sleep(0.05)
    stream.put("a", notify=False)
    stream.put("b", notify=False)
    assert not future.done()  # queued without a wake-up: not yet seen
    wake_readers([stream])
    assert future.result(5) == ["a", "b"]
