"""Run repos concurrently on this machine, in threads or in processes.

Threads suit the pipeline: most of its time is spent waiting on git and the
network in subprocesses.  ``processes`` sidesteps the GIL for codemod-heavy
campaigns.  At most ``4 * jobs`` items are in flight, so a fleet of any size is
streamed, never held in memory.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from .. import cpu

T = TypeVar("T")
R = TypeVar("R")


def _adopt_environment(environment: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environment)


class LocalExecutor:
    def __init__(self, jobs: int, *, processes: bool = False) -> None:
        self.jobs = jobs
        self.pool: cf.Executor
        if processes:
            # forkserver: no inherited threads or locks from the coordinator
            self.pool = cf.ProcessPoolExecutor(
                jobs,
                mp_context=multiprocessing.get_context("forkserver"),
                # the fork server keeps the environment it started with; hand over today's
                # (forge tokens live there, and only there)
                initializer=_adopt_environment,
                initargs=(dict(os.environ),),
            )
        else:
            self.pool = cf.ThreadPoolExecutor(jobs, thread_name_prefix="fleetchange")
            cpu.enable()  # threads share one GIL: parse big files in a process per core

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        source = iter(items)
        pending = {self.pool.submit(fn, item) for item in itertools.islice(source, 4 * self.jobs)}
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield future.result()
                for item in itertools.islice(source, 1):
                    pending.add(self.pool.submit(fn, item))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        cpu.shutdown()
