"""``kind = "command"``: run a shell command in the repository's working tree.

The command sees ``FLEETCHANGE_REPO``, ``FLEETCHANGE_CAMPAIGN`` and, one per line,
the candidate files in ``FLEETCHANGE_FILES``.  With ``grep`` set, repositories
with no candidate file are skipped without running it.  A non-zero exit fails
the repository with the tail of the output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..process import run_with_timeout
from ..schema import Key, int_range, non_empty
from .base import LoadContext, StepContext, StepResult

KEYS: Mapping[str, Key] = {
    "run": Key("str", required=True, check=non_empty, doc="shell command run in the repo root"),
    "timeout": Key(
        "int", default=600, check=int_range(1, 86_400), doc="seconds before it is killed"
    ),
}
USES_CANDIDATES: bool = False
DEFAULT_PATHS: tuple[str, ...] = ("**",)


def prepare(options: dict[str, Any], ctx: LoadContext) -> dict[str, Any]:
    return options


def describe(options: Mapping[str, Any]) -> str:
    return f"command `{options['run']}`"


def apply(options: Mapping[str, Any], ctx: StepContext) -> StepResult:
    if options.get("grep") and not ctx.candidates:
        return StepResult(summary=f"`{options['run']}` skipped: no file matches")
    env = {
        "FLEETCHANGE_REPO": ctx.repo,
        "FLEETCHANGE_CAMPAIGN": ctx.campaign_id,
        "FLEETCHANGE_FILES": "\n".join(ctx.candidates),
    }
    done = run_with_timeout(options["run"], cwd=ctx.workdir, timeout=options["timeout"], env=env)
    if done.timed_out:
        return StepResult(
            summary="",
            failed=f"command timed out after {options['timeout']}s: {options['run']}\n{done.tail}",
        )
    if done.returncode != 0:
        return StepResult(
            summary="", failed=f"command exited {done.returncode}: {options['run']}\n{done.tail}"
        )
    return StepResult(summary=f"ran `{options['run']}`")
