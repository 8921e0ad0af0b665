"""One writer per campaign: an advisory ``flock`` the kernel drops when the holder dies.

A crashed or killed run never leaves the lock stuck: the lock file may remain,
but the lock on it is gone with the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import LockedError
from .paths import ensure_private_dir


@contextlib.contextmanager
def campaign_lock(folder: Path, campaign_id: str) -> Iterator[None]:
    ensure_private_dir(folder)
    path = folder / f"{campaign_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"campaign {campaign_id!r} is being applied by another fleetchange process "
                f"(pid {holder}); wait for it or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing drops the flock
