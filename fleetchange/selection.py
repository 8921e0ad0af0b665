"""Which repositories a campaign targets: cheap name filters, before any git work."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator

from .campaign import Targets
from .forges.base import RepoRef


def glob_match(name: str, pattern: str) -> bool:
    """``fnmatch`` where ``*`` stays within one path segment and ``**`` crosses them."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(name, pattern.replace("**", "*"))
    return len(name.split("/")) == len(pattern.split("/")) and fnmatch.fnmatchcase(name, pattern)


def skip_reason(repo: RepoRef, targets: Targets) -> str | None:
    """Why a listed repo is not a target, or None when it is one."""
    if repo.archived and not targets.include_archived:
        return "archived"
    if repo.fork and not targets.include_forks:
        return "fork"
    if targets.topics and not set(targets.topics) & set(repo.topics):
        return "no matching topic"
    return None


def name_selected(name: str, targets: Targets, only: Iterable[str] = ()) -> bool:
    if not any(glob_match(name, p) for p in targets.repos):
        return False
    if any(glob_match(name, p) for p in targets.exclude):
        return False
    only = list(only)
    return not only or any(glob_match(name, p) for p in only)


def is_target(repo: RepoRef, targets: Targets) -> bool:
    """Selected by name and not skipped (archived, fork, topic)."""
    return name_selected(repo.name, targets) and skip_reason(repo, targets) is None


def select(
    repos: Iterable[RepoRef], targets: Targets, only: Iterable[str] = ()
) -> Iterator[RepoRef]:
    """Repos whose name passes ``repos``/``exclude`` (and ``--only``), in name order."""
    only = list(only)
    yield from sorted(
        (r for r in repos if name_selected(r.name, targets, only)), key=lambda r: r.name
    )
