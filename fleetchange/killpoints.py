"""Named points where the crash-safety tests kill fleetchange with SIGKILL.

``FLEETCHANGE_KILL_AT=name:n`` kills the process the n-th time (1-based) any
thread reaches point ``name``.  Unset (always, outside tests), a point costs one
dictionary lookup.  The points sit between every pair of side effects that a
crash must not be able to split: clone, push, MR creation, state writes.
"""

from __future__ import annotations

import os
import signal
import threading

_spec = os.environ.get("FLEETCHANGE_KILL_AT", "")
_name, _, _nth = _spec.partition(":")
_target = int(_nth or "1") if _name else 0
_count = 0
_lock = threading.Lock()


def reached(name: str) -> None:
    global _count
    if name != _name:
        return
    with _lock:
        _count += 1
        if _count == _target:
            os.kill(os.getpid(), signal.SIGKILL)
