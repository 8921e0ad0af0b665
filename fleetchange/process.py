"""Run a shell command with a timeout that kills its whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 40
MAX_OUTPUT = 256 * 1024


@dataclass(frozen=True)
class Completed:
    returncode: int
    timed_out: bool
    output: str  # the last MAX_OUTPUT bytes
    seconds: float

    @property
    def tail(self) -> str:
        return "\n".join(self.output.rstrip("\n").splitlines()[-TAIL_LINES:])


def run_with_timeout(
    command: str, *, cwd: Path, timeout: float, env: Mapping[str, str] | None = None
) -> Completed:
    """Run ``command`` through the shell; on timeout SIGKILL its process group.

    Children that the command forks (test runners spawn workers) share the
    group, so nothing outlives the timeout.  Output goes to a temp file rather
    than a pipe so a chatty command can never block on a full pipe.
    """

    full_env = {**os.environ, **(env or {})}
    start = time.monotonic()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            command,
            shell=True,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # the leader may be done while children still run: clear the group either way
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        size = log.seek(0, os.SEEK_END)
        log.seek(max(0, size - MAX_OUTPUT))  # keep the end: that is where failures are
        output = log.read().decode("utf-8", errors="replace")
    return Completed(
        returncode=proc.returncode if not timed_out else -9,
        timed_out=timed_out,
        output=output,
        seconds=time.monotonic() - start,
    )
