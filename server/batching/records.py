"""The one way the server reads a generation: an async iterator of typed records, whatever ran it.

`generation_records(start, executor)` runs `start()` in the pool (model lookup, validation, the prompt's
forward pass; it returns a continuous-batching `TokenStream`, or Model.generate's generator for a call run
alone: beam search, forecasts, batching off), then yields GeneratedToken records and one GenerationEnd. A
TokenStream is read on the event loop (woken once per step by its scheduler); a generator is advanced in the
pool one record at a time. Closing the iterator ends the generator's clean-up in the pool.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import AsyncIterator, Callable, Iterator

from ..bridge import in_thread, iterate_in_thread
from .generation import TokenStream


async def generation_records(start: Callable[[], Iterator], executor: concurrent.futures.Executor
                             ) -> AsyncIterator:
    """GeneratedToken..., GenerationEnd of the generation `start()` begins (see the module docstring)."""
    source = await in_thread(executor, start)
    if isinstance(source, TokenStream):
        async for record in source:
            yield record
        return
    records = iterate_in_thread(source, executor)
    try:
        async for record in records:
            yield record
    finally:
        await records.aclose()
