"""``fleetchange import`` and ``fleetchange nudge``: MRs fleetchange did not open, and stale ones."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from .. import paths
from ..campaign import load
from ..errors import CampaignError, UsageError
from ..forges.base import ForgeError, MergeRequest
from ..gitops import redact
from ..locking import campaign_lock
from ..selection import is_target
from ..state import RepoRecord, Store
from .review import MR_STATES, concurrently, open_context, tracked

UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``7d`` / ``12h`` / ``2w`` / ``30m`` → seconds."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in UNITS or not text[:-1].isdigit():
        raise UsageError(
            f"--older-than: expected a number and a unit (m, h, d, w) such as 7d, got {text!r}"
        )
    return int(text[:-1]) * UNITS[text[-1]]


def register(store: Store, campaign_ref: str) -> str:
    """Accept a campaign id the state knows, or a campaign file (recorded on the way)."""
    if store.campaign(campaign_ref) is not None:
        return campaign_ref
    path = Path(campaign_ref)
    if not path.is_file():
        known = ", ".join(c.id for c in store.campaigns()) or "none yet"
        raise UsageError(f"unknown campaign {campaign_ref!r} and no such file (known: {known})")
    try:
        campaign = load(path)
    except CampaignError as exc:
        raise UsageError(str(exc)) from None
    store.upsert_campaign(
        id=campaign.id,
        title=campaign.title,
        file=str(campaign.file),
        version=campaign.version,
        forge=campaign.targets.forge,
        branch=campaign.branch,
    )
    return campaign.id


def import_mrs(store: Store, *, campaign_ref: str, branch: str, jobs: int, out: Console) -> int:
    campaign_id = register(store, campaign_ref)
    with campaign_lock(paths.locks(), campaign_id):
        ctx = open_context(store, campaign_id)
        targets = [
            repo
            for name, repo in sorted(ctx.repos.items())
            if is_target(repo, ctx.campaign.targets)
        ]

        def find(repo_name: str) -> MergeRequest | None:
            return ctx.forge.find_mr(ctx.repos[repo_name], branch)

        adopted = already = failures = 0
        for name, result in concurrently(find, [r.name for r in targets], jobs):
            if isinstance(result, Exception):
                failures += 1
                out.print(f"{name}: {redact(str(result))}")
                continue
            if result is None:
                continue
            existing = store.repo(campaign_id, name)
            if (
                existing is not None
                and existing.mr_number == result.number
                and existing.branch == ("" if branch == ctx.campaign.branch else branch)
            ):
                already += 1
                continue
            record = RepoRecord(
                campaign=campaign_id,
                repo=name,
                state=MR_STATES[result.state],
                reason=f"imported: MR on branch {branch}",
                version=ctx.campaign.version,
                head_sha=result.head_sha or "",
                default_branch=ctx.repos[name].default_branch or "",
                mr_number=result.number,
                mr_url=result.url,
                mr_state=result.state,
                pipeline=result.pipeline or "",
                approved=None if result.approved is None else int(result.approved),
                branch="" if branch == ctx.campaign.branch else branch,
            )
            store.record(
                record, [("imported", f"{result.url} on {branch}"), (record.state, result.url)]
            )
            adopted += 1
        out.print(
            f"{campaign_id}: imported {adopted} merge request(s) on branch {branch}"
            + (f", {already} already tracked" if already else "")
            + (f", {failures} failed" if failures else "")
        )
        return 1 if failures else 0


NUDGE = (
    "Friendly reminder from fleetchange: this merge request is part of the campaign "
    "**{title}** (`{campaign}`) and has been open for {age}. It was tested before it was "
    "opened; a review (or a comment saying why not) helps the rollout finish. Thank you!"
)


def nudge(
    store: Store, *, campaign_id: str, older_than: str, jobs: int, dry_run: bool, out: Console
) -> int:
    """Comment on open MRs older than ``older_than``, at most once per that interval."""
    interval = parse_age(older_than)
    now = time.time()
    with campaign_lock(paths.locks(), campaign_id):
        ctx = open_context(store, campaign_id)
        opened: dict[str, float] = {}
        last_nudge: dict[str, float] = {}
        for event in store.events(campaign_id):
            if event.state == "mr-open":
                opened.setdefault(event.repo, event.at)
            elif event.state == "nudged":
                last_nudge[event.repo] = event.at
        due = [
            r
            for r in tracked(store, campaign_id)
            if r.state == "mr-open"
            and now - opened.get(r.repo, now) >= interval
            and now - last_nudge.get(r.repo, 0.0) >= interval
        ]

        def act(record: RepoRecord) -> str:
            repo = ctx.repos.get(record.repo)
            if repo is None:
                raise ForgeError(f"{record.repo} no longer exists on the forge")
            assert record.mr_number is not None
            mr = ctx.forge.get_mr(repo, record.mr_number)
            if mr.state != "open":
                return f"skipped: {mr.state}"
            age = _human(now - opened[record.repo])
            if not dry_run:
                ctx.forge.comment_mr(
                    repo, mr, NUDGE.format(title=ctx.campaign.title, campaign=campaign_id, age=age)
                )
            return f"nudged (open {age})"

        failures = 0
        for record, result in concurrently(act, due, jobs):
            if isinstance(result, Exception):
                failures += 1
                out.print(f"{record.repo}: {redact(str(result))}")
                continue
            out.print(f"{record.repo}: {'would be ' if dry_run else ''}{result}")
            if result.startswith("nudged") and not dry_run:
                store.record(record, [("nudged", record.mr_url)])
        out.print(f"{campaign_id}: {len(due)} stale merge request(s) older than {older_than}")
        return 1 if failures else 0


def _human(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    return f"{days}d {hours}h" if days else f"{hours}h {rest % 3600 // 60}m"
