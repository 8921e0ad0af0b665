"""The executor interface: run a picklable function over items, yielding results as they finish.

Kept deliberately small so another engine (Ray, a batch queue) can plug in:
``map_unordered`` must bound how much work is in flight (the fleet is never held
in memory) and ``close`` must release workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...

    def close(self) -> None: ...
