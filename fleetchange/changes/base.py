"""The change-kind plugin interface.

A change kind is a module (``changes/libcst.py``, ``changes/command.py``, ...) that
implements :class:`ChangeKind`: the keys its ``[[change]]`` table accepts, how to
validate them once at load time, and how to apply them to one working tree.
Options are plain, picklable data (file contents are read at load time) so a
step can run on any executor, including a remote Dask worker that never sees the
campaign folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..schema import Key, TableContext


@dataclass(frozen=True)
class LoadContext:
    """What a change kind may look at while validating its table."""

    table: TableContext
    base_dir: Path  # the campaign file's folder


@dataclass
class StepContext:
    """One change step running in one repository's working tree."""

    workdir: Path
    repo: str  # "group/name"
    campaign_id: str
    candidates: list[str]  # repo-relative files selected by ``paths`` + ``grep`` at the base commit
    default_branch: str = "main"
    title: str = ""
    home: Path | None = None  # $FLEETCHANGE_HOME of the machine running the step (caches)
    use_llm_cache: bool = True
    token_budget: int | None = None  # model tokens this repo may still spend; None: no limit


@dataclass
class StepResult:
    summary: str  # one line for the MR body, e.g. "ReplaceLoggingWarn changed 3 files"
    changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # per-file trouble that did not stop the step
    failed: str | None = None  # the step failed: the repo is recorded as errored with this reason
    # with ``failed``: the state to record instead of "error" (e.g. "llm-failed", "budget-exhausted")
    failed_state: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, calls
    notes: list[str] = field(default_factory=list)  # extra lines for reviewers in the MR body


#: ``failed_state`` of a step whose credentials were rejected: the whole run stops (exit 2)
AUTH_FAILED = "auth-failed"


class ChangeKind(Protocol):
    #: keys of this kind's [[change]] table, besides the common kind/name/paths/grep
    KEYS: Mapping[str, Key]
    #: True when the step only ever touches candidate files (repos with none skip checkout)
    USES_CANDIDATES: bool
    DEFAULT_PATHS: tuple[str, ...]

    def prepare(self, options: dict[str, Any], ctx: LoadContext) -> dict[str, Any]:
        """Validate and normalise options (raise ``ctx.table.error(...)``)."""
        ...

    def describe(self, options: Mapping[str, Any]) -> str:
        """Name the step for humans: "libcst ReplaceLoggingWarn", "command `ruff --fix`"."""
        ...

    def apply(self, options: Mapping[str, Any], ctx: StepContext) -> StepResult: ...


class UnsafePath(Exception):
    pass


def safe_target(workdir: Path, relative: str) -> Path:
    """``workdir/relative`` if it stays inside the tree without following a symlink.

    Writes through a symlink could land anywhere on the machine (a hostile repo can
    commit ``docs -> /etc``), so every existing component must be a real directory.
    """
    parts = Path(relative).parts
    if (
        not parts
        or Path(relative).is_absolute()
        or ".." in parts
        or any(part.lower() == ".git" for part in parts)  # also sub/.git and .GIT on macOS
    ):
        raise UnsafePath(f"{relative}: path leaves the repository")
    current = workdir
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise UnsafePath(f"{relative}: refusing to follow symlink {part}")
    return current


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already holds exactly it."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.fleetchange-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True
