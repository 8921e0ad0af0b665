"""A small process pool for CPU-bound work (libcst parsing) called from I/O threads.

The default executor runs repos on threads, which suits git and the network but
serialises libcst on the GIL.  Parsing is ~10x slower than ``ast``; big files
go to this pool (one process per core), small ones stay inline where a round
trip would cost more than it saves.  Executors that already run repos in their
own processes (``processes``, ``dask``) leave the pool off.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

R = TypeVar("R")

_lock = threading.Lock()
_workers = 0
_pool: cf.ProcessPoolExecutor | None = None


def enable(workers: int | None = None) -> None:
    global _workers
    _workers = workers if workers is not None else (os.cpu_count() or 1)


def enabled() -> bool:
    return _workers > 0


def run(fn: Callable[..., R], *args: object) -> R:
    """``fn(*args)`` in the pool when it is enabled, else right here."""
    global _pool
    if not _workers:
        return fn(*args)
    with _lock:
        if _pool is None:
            _pool = cf.ProcessPoolExecutor(
                _workers, mp_context=multiprocessing.get_context("forkserver")
            )
        pool = _pool
    try:
        return pool.submit(fn, *args).result()
    except BrokenProcessPool:
        # a worker died (out of memory, killed): do this one here, and start afresh next time
        with _lock:
            if _pool is pool:
                _pool = None
        return fn(*args)


@atexit.register
def shutdown() -> None:
    global _pool, _workers
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
        _pool, _workers = None, 0
