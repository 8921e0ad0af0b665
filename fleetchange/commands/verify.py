"""``fleetchange verify``: prove the change landed by re-scanning every default branch.

An MR's state is not the code's state: a merged change can be reverted, a repo
can be changed by hand, a repo can be missed.  ``verify`` fetches each target's
current default branch into the mirror cache and looks for the campaign's
patterns (``contains`` and each step's ``grep``) with ``git grep`` — no checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .. import paths
from ..campaign import Campaign
from ..errors import UsageError
from ..executors.local import LocalExecutor
from ..forges.base import ForgeError, RepoRef
from ..gitops import GitError, ls_remote, redact
from ..pipeline import BaseFiles, fetch_mirror, forge_for
from ..selection import is_target
from ..state import Store
from .review import open_context

# what a remaining match means, by the repo's recorded state
VERDICTS = {
    "merged": "merged but the pattern is back (reverted or re-introduced)",
    "mr-open": "MR still open",
    "closed": "MR closed without merging",
    "diverged": "branch taken over by its owner",
    None: "never reached by the campaign",
}


@dataclass(frozen=True)
class ScanJob:
    campaign: Campaign
    repo: RepoRef
    home: Path


@dataclass
class Scan:
    repo: str
    base: str = ""
    files: list[str] = field(default_factory=list)
    error: str = ""


def scan_repo(job: ScanJob) -> Scan:
    """The files of the repo's default branch that still match the campaign's patterns."""
    campaign, repo = job.campaign, job.repo
    scan = Scan(repo.name)
    if repo.default_branch is None:
        return scan
    forge = forge_for(campaign.targets)
    env = forge.git_env()
    mirrors = job.home / "mirrors" / forge.key
    mirrors.mkdir(parents=True, exist_ok=True)
    ref = f"refs/heads/{repo.default_branch}"
    try:
        base = ls_remote(repo.clone_url, ref, cwd=mirrors, env=env).get(ref)
        if base is None:
            return scan
        mirror = fetch_mirror(repo, mirrors, base, env=env)
        files = BaseFiles(mirror, base)
        found: set[str] = set()
        if campaign.targets.contains:
            found.update(files.grep(campaign.targets.contains))
        for step in campaign.steps:
            if step.grep:
                found.update(files.candidates(step))
        scan.base, scan.files = base, sorted(found)
    except (GitError, ForgeError, OSError) as exc:
        scan.error = redact(str(exc))
    return scan


def patterns_of(campaign: Campaign) -> list[str]:
    found = [campaign.targets.contains] if campaign.targets.contains else []
    return found + [s.grep for s in campaign.steps if s.grep]


def verify(store: Store, *, campaign_id: str, jobs: int, as_json: bool, out: Console) -> int:
    ctx = open_context(store, campaign_id)
    campaign = ctx.campaign
    if not patterns_of(campaign):
        raise UsageError(
            f"campaign {campaign_id!r} has no contains or grep pattern: nothing to verify against"
        )
    records = {r.repo: r for r in store.repos(campaign_id)}
    targets = [
        repo
        for name, repo in sorted(ctx.repos.items())
        if name in records or is_target(repo, campaign.targets)
    ]
    executor = LocalExecutor(jobs)
    try:
        scans = list(
            executor.map_unordered(scan_repo, (ScanJob(campaign, r, paths.home()) for r in targets))
        )
    finally:
        executor.close()
    remaining = [s for s in scans if s.files]
    errors = [s for s in scans if s.error]
    rows = []
    for scan in sorted(remaining, key=lambda s: s.repo):
        record = records.get(scan.repo)
        state = record.state if record else None
        rows.append(
            {
                "repo": scan.repo,
                "state": state,
                "verdict": VERDICTS.get(state, f"recorded as {state}"),
                "files": scan.files,
                "base_sha": scan.base,
                "mr_url": record.mr_url if record and record.mr_url else None,
            }
        )
    if as_json:
        print(
            json.dumps(
                {
                    "campaign": campaign_id,
                    "patterns": patterns_of(campaign),
                    "scanned": len(scans),
                    "clean": len(scans) - len(remaining) - len(errors),
                    "remaining": rows,
                    "errors": [{"repo": s.repo, "error": s.error} for s in errors],
                },
                indent=2,
            )
        )
    else:
        out.print(
            f"{campaign_id}: scanned {len(scans)} default branches; "
            f"{len(scans) - len(remaining) - len(errors)} clean, {len(remaining)} still carry the pattern"
            + (f", {len(errors)} could not be scanned" if errors else "")
        )
        if rows:
            table = Table(show_edge=False, header_style="bold")
            for column in ("repo", "state", "verdict", "files"):
                table.add_column(column)
            for row in rows:
                files = row["files"]
                assert isinstance(files, list)
                shown = ", ".join(files[:3]) + (f" (+{len(files) - 3})" if len(files) > 3 else "")
                table.add_row(
                    str(row["repo"]), str(row["state"] or "-"), str(row["verdict"]), shown
                )
            out.print(table)
        for scan in errors:
            out.print(f"{scan.repo}: {scan.error}")
    return 1 if remaining or errors else 0
