"""Run repos on a Dask cluster: ``apply --executor dask --scheduler tcp://HOST:8786``.

Workers need fleetchange installed, git, and network access to the forge; they
keep their own mirror cache under their own ``$FLEETCHANGE_HOME``.  Only the
coordinator writes the state database: workers return outcomes, nothing else.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import UsageError

T = TypeVar("T")
R = TypeVar("R")


def _check_reachable(scheduler: str | None) -> None:
    """Fail in a second on a wrong address: the Dask client would keep retrying until its timeout."""
    if not scheduler or not scheduler.startswith("tcp://"):
        return
    host, _, port = scheduler.removeprefix("tcp://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


class DaskExecutor:
    def __init__(self, scheduler: str | None, *, jobs: int) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(
                "--executor dask needs the dask extra: pip install 'fleetchange[dask]'"
            ) from None
        _check_reachable(scheduler)
        try:
            self.client: Any = Client(scheduler, set_as_default=False, timeout="20s")  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        threads = sum(self.client.nthreads().values()) or 1  # type: ignore[no-untyped-call]
        self.window = max(4 * jobs, 2 * threads)

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        from distributed import as_completed as untyped_as_completed

        as_completed: Any = untyped_as_completed
        source = iter(items)
        first = [
            self.client.submit(fn, item, pure=False)
            for item in itertools.islice(source, self.window)
        ]
        pending = as_completed(first, loop=self.client.loop)
        for future in pending:
            result: R = future.result()
            future.release()
            yield result
            for item in itertools.islice(source, 1):
                pending.add(self.client.submit(fn, item, pure=False))

    def close(self) -> None:
        self.client.close()
