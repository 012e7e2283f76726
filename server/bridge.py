"""The asyncio side of the server: one event loop thread; sync servicer methods served by a grpc.aio server.

The server is a `grpc.aio` server: less CPU per streamed message than grpcio's thread-pool server at high
concurrency (311 against 376 us per token at 64 streams, docs/performance.md, "Serving under load"), no
thread per stream.
Its event loop runs in one daemon thread shared by every server of the process (`EventLoopThread.shared()`);
the sync API of `RnnServer` (start, drain, stop) submits coroutines to it.

Servicer methods written as plain functions or generators (most of them: they call blocking engine code) are
wrapped by `adapt_servicer` into async handlers that run them in a thread pool with a `SyncContext`: the
grpc.ServicerContext API they use (abort_with_status raises, is_active, add_callback, time_remaining, ...).
A generator's items are pulled one by one in the pool; a request stream is read on the loop for the thread.
Context variables (request id, call info) travel with every piece of work. Methods that are already
`async def` (StreamGenerate) are served as they are.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

_DONE = object()
EOF_TURNS = 3  # loop turns at the end of a request stream for a cancellation to show (see _SyncRequests)


class EventLoopThread:
    """An asyncio loop running forever in a daemon thread; `run(coro)` waits for a coroutine's result."""

    _shared: EventLoopThread | None = None
    _shared_lock = threading.Lock()

    def __init__(self, name: str = "rnn-grpc-loop") -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), daemon=True, name=name)
        self.thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    @classmethod
    def shared(cls) -> EventLoopThread:
        """The process's one loop thread (grpc.aio servers of one process share it)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def run(self, coro, timeout: float | None = None) -> Any:
        """Run `coro` on the loop and return its result (or raise; TimeoutError after `timeout`)."""
        if threading.current_thread() is self.thread:
            raise RuntimeError("EventLoopThread.run called from the loop's own thread: it would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class CallAborted(Exception):
    """Raised in a worker thread by SyncContext.abort*: the call ends with this status (like grpc's abort)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple = ()) -> None:
        super().__init__(code, details)
        self.code, self.details, self.trailing_metadata = code, details, tuple(trailing_metadata or ())


class RequestStreamEnded(grpc.RpcError):
    """The client's request stream failed or the call ended while a worker thread was reading it."""


class SyncContext:
    """The grpc.ServicerContext API the sync servicers use, over a grpc.aio context, for a worker thread."""

    def __init__(self, context: grpc.aio.ServicerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._context, self._loop = context, loop
        self._active = True
        self._callbacks: list[Callable[[], Any]] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- read-only views of the call
    def invocation_metadata(self):
        return self._context.invocation_metadata()

    def peer(self) -> str:
        return self._context.peer()

    def auth_context(self):
        return self._context.auth_context()

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def is_active(self) -> bool:
        return self._active

    # ---------------------------------------------------------------- ending and decorating the call
    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple = ()):
        raise CallAborted(code, details, trailing_metadata)

    def abort_with_status(self, status: grpc.Status):
        raise CallAborted(status.code, status.details, status.trailing_metadata)

    def send_initial_metadata(self, metadata) -> None:
        coro = self._context.send_initial_metadata(tuple(metadata))
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def set_trailing_metadata(self, metadata) -> None:
        self._loop.call_soon_threadsafe(self._context.set_trailing_metadata, tuple(metadata))

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Run `callback` when the call ends (for any reason); False if it has already ended."""
        with self._lock:
            if not self._active:
                return False
            self._callbacks.append(callback)
            return True

    def code(self):
        return self._context.code()

    # ---------------------------------------------------------------- called by the adapter on the loop
    def _end(self) -> None:
        with self._lock:
            self._active = False
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


class _SyncRequests(Iterator):
    """A worker thread's iterator over the call's (async) request stream; each message is read on the loop.

    grpc.aio reports a client's cancellation as an ordinary end of the request stream, and cancels the
    handler just after; so at the end of the stream the loop is given a few turns for that cancellation to
    land, and a call that has ended raises RequestStreamEnded (a grpc.RpcError, as grpcio's sync server
    raises from its request iterator) instead of looking like a complete stream."""

    def __init__(self, requests: AsyncIterator, context: SyncContext, loop: asyncio.AbstractEventLoop):
        self._requests, self._context, self._loop = requests.__aiter__(), context, loop
        self._pending: concurrent.futures.Future | None = None
        self._closed = False

    async def _read(self):
        try:
            return await self._requests.__anext__()
        except StopAsyncIteration:
            for _ in range(EOF_TURNS):
                await asyncio.sleep(0)
            raise

    def __next__(self):
        if self._closed:
            raise RequestStreamEnded("the call has ended")
        self._pending = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
        try:
            return self._pending.result()
        except StopAsyncIteration:
            if not self._context.is_active():
                raise RequestStreamEnded("the call was cancelled while its requests were read") from None
            raise StopIteration from None
        except (Exception, concurrent.futures.CancelledError) as exc:  # cancelled, reset, or over a limit
            raise RequestStreamEnded(f"reading the request stream failed: {exc!r}") from exc
        finally:
            self._pending = None

    def close(self) -> None:
        self._closed = True
        pending = self._pending
        if pending is not None:
            pending.cancel()


def in_thread(executor: concurrent.futures.Executor, fn: Callable, *args) -> asyncio.Future:
    """`fn(*args)` run in `executor` with the caller's context variables, as an awaitable."""
    return asyncio.wrap_future(executor.submit(contextvars.copy_context().run, fn, *args))


@contextlib.asynccontextmanager
async def _sync_call(request, context: grpc.aio.ServicerContext, request_streaming: bool):
    """(the request, or a worker's iterator over the request stream; the call's SyncContext) for a sync
    method; a CallAborted raised inside ends the call with its status, and the call's end is marked."""
    loop = asyncio.get_running_loop()
    sync = SyncContext(context, loop)
    requests = _SyncRequests(request, sync, loop) if request_streaming else None
    try:
        yield requests or request, sync
    except CallAborted as exc:
        await context.abort(exc.code, exc.details, exc.trailing_metadata)
    finally:
        sync._end()  # (again for streams: harmless) before close() wakes a worker that must see it
        if requests is not None:
            requests.close()


def _unary_response(method, executor, request_streaming: bool):
    async def handler(request, context):
        async with _sync_call(request, context, request_streaming) as (arg, sync):
            return await in_thread(executor, method, arg, sync)

    return handler


def _stream_response(method, executor, request_streaming: bool):
    async def handler(request, context):
        async with _sync_call(request, context, request_streaming) as (arg, sync):
            # the call is marked ended before the generator's clean-up starts in the pool, which must see it
            items = iterate_in_thread(method(arg, sync), executor, on_end=sync._end)
            async with contextlib.aclosing(items):
                async for item in items:
                    yield item

    return handler


def _close_after(running: concurrent.futures.Future | None, ctx: contextvars.Context, gen) -> None:
    """Close a generator (its `finally` blocks run) once the item being computed, if any, is done."""
    if running is not None:
        try:
            running.result()
        except BaseException:  # noqa: BLE001 - the call is over; only the clean-up matters now
            pass
    ctx.run(gen.close)


def adapt_method(method: Callable, executor: concurrent.futures.Executor, request_streaming: bool,
                 response_streaming: bool) -> Callable:
    """An async handler for `method(request_or_iterator, context)`; async methods are returned unchanged."""
    if inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method):
        return method
    make = _stream_response if response_streaming else _unary_response
    return functools.wraps(method)(make(method, executor, request_streaming))


class _Adapted:
    """Attribute access to a servicer's methods, each adapted for the grpc.aio server."""


def adapt_servicer(servicer: Any, service: Any, executor: concurrent.futures.Executor) -> Any:
    """An object with the methods of `service` (a ServiceDescriptor) as async handlers over `servicer`'s."""
    adapted = _Adapted()
    for m in service.methods:
        method = getattr(servicer, m.name)
        setattr(adapted, m.name, adapt_method(method, executor, m.client_streaming, m.server_streaming))
    return adapted


async def iterate_in_thread(items: Iterator, executor: concurrent.futures.Executor,
                            on_end: Callable[[], Any] | None = None) -> AsyncIterator:
    """The items of a blocking iterator, each produced in `executor` (context variables carried along).
    When iteration ends for any reason, `on_end()` runs (on the loop) before a generator is closed."""
    ctx = contextvars.copy_context()
    items = iter(items)
    running: concurrent.futures.Future | None = None
    try:
        while True:
            running = executor.submit(ctx.run, next, items, _DONE)
            item = await asyncio.wrap_future(running)
            running = None
            if item is _DONE:
                return
            yield item
    finally:
        if on_end is not None:
            on_end()
        if hasattr(items, "close"):  # a generator: its clean-up runs in the pool, after its current item
            executor.submit(_close_after, running, ctx, items)
