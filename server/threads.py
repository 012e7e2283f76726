"""The BLAS thread limit of the server and training worker processes (--blas-threads / RNN_BLAS_THREADS).

NumPy's BLAS (OpenBLAS) starts one thread per core. The server's products are small (one generation step,
one Predict batch) and run from many request threads at once; on a busy machine a threaded BLAS then only
spins against them (small recurrent products measured up to 27x slower with 2 threads than with 1 on a busy
2-core machine). So each process limits its BLAS pool at start-up: `rnn-server` in `main()`, each training
worker in `run_job` (spawned workers start a fresh BLAS, so the server's limit does not reach them).
"""

from __future__ import annotations

from rnn_engine.validate import is_int

DEFAULT_BLAS_THREADS = 1
MAX_BLAS_THREADS = 256


def limit_blas_threads(threads: int) -> int | None:
    """Limit this process's BLAS pools to `threads` threads (process-wide, until it exits); returns the
    count threadpoolctl then reports (see `blas_threads`)."""
    if not is_int(threads) or not 1 <= threads <= MAX_BLAS_THREADS:
        raise ValueError(f"blas_threads: expected an int in [1, {MAX_BLAS_THREADS}], got {threads!r}")
    import numpy  # noqa: F401 - loads NumPy's BLAS, so that threadpoolctl finds it
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")  # called, not entered: the limit stays
    return blas_threads()


def blas_threads() -> int | None:
    """The largest thread count of the BLAS libraries loaded in this process (None: none loaded)."""
    from threadpoolctl import threadpool_info

    counts = [int(info["num_threads"]) for info in threadpool_info() if info.get("user_api") == "blas"]
    return max(counts) if counts else None
