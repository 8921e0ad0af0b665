"""The review lifecycle: ``sync`` MR states from the forge, ``merge`` the ready ones, ``close``.

All three read the campaign's state, talk to the forge concurrently (the forge
clients pace themselves within rate limits) and record every change as an event.
They hold the campaign lock, like ``apply``: one writer at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from .. import paths
from ..campaign import Campaign, load
from ..errors import CampaignError, UsageError
from ..forges.base import Forge, ForgeAuthError, ForgeError, MergeRequest, RepoRef
from ..gitops import redact
from ..locking import campaign_lock
from ..pipeline import forge_for
from ..selection import glob_match
from ..state import RepoRecord, Store

T = TypeVar("T")
R = TypeVar("R")
MR_STATES = {"open": "mr-open", "merged": "merged", "closed": "closed"}


@dataclass(frozen=True)
class Context:
    campaign: Campaign
    forge: Forge
    store: Store
    repos: dict[str, RepoRef]


def open_context(store: Store, campaign_id: str) -> Context:
    record = store.campaign(campaign_id)
    if record is None:
        known = ", ".join(c.id for c in store.campaigns()) or "none yet"
        raise UsageError(f"unknown campaign {campaign_id!r} (known: {known})")
    if not Path(record.file).is_file():
        raise UsageError(
            f"campaign {campaign_id!r} was applied from {record.file}, which no longer exists"
        )
    try:
        campaign = load(record.file)
    except CampaignError as exc:
        raise UsageError(str(exc)) from None
    forge = forge_for(campaign.targets)
    try:
        repos = {r.name: r for r in forge.list_repos()}
    except ForgeAuthError as exc:
        raise UsageError(str(exc)) from None
    except ForgeError as exc:
        raise UsageError(f"cannot list repositories: {exc}") from None
    return Context(campaign, forge, store, repos)


def concurrently(
    fn: Callable[[T], R], items: Iterable[T], jobs: int
) -> Iterator[tuple[T, R | Exception]]:
    """Run ``fn`` over items on threads; yield (item, result or the exception it raised)."""
    with cf.ThreadPoolExecutor(jobs, thread_name_prefix="fleetchange-review") as pool:
        futures = {pool.submit(fn, item): item for item in items}
        for future in cf.as_completed(futures):
            try:
                yield futures[future], future.result()
            except (ForgeError, OSError) as exc:
                yield futures[future], exc


def _apply_mr(record: RepoRecord, mr: MergeRequest) -> list[tuple[str, str]]:
    """Copy the forge's view of the MR into the record; the events that describe the change."""
    events: list[tuple[str, str]] = []
    new_state = (
        MR_STATES[mr.state] if record.state in ("mr-open", "merged", "closed") else record.state
    )
    pipeline = mr.pipeline or ""
    approved = None if mr.approved is None else int(mr.approved)
    if new_state != record.state:
        events.append((new_state, f"{mr.url} is {mr.state}"))
    if pipeline != record.pipeline:
        events.append(("pipeline", pipeline or "none"))
    if approved != record.approved:
        events.append(("approval", "approved" if approved else "not approved"))
    if new_state != record.state and new_state in ("mr-open", "merged"):
        record.reason = ""  # an old failure or closing reason no longer applies
    record.state, record.mr_state, record.pipeline, record.approved = (
        new_state,
        mr.state,
        pipeline,
        approved,
    )
    return events


def tracked(store: Store, campaign_id: str, pattern: str | None = None) -> list[RepoRecord]:
    return [
        r
        for r in store.repos(campaign_id)
        if r.mr_number is not None and (pattern is None or glob_match(r.repo, pattern))
    ]


def sync(store: Store, *, campaign_id: str | None, jobs: int, console: Console) -> int:
    ids = [campaign_id] if campaign_id else [c.id for c in store.campaigns()]
    failed = 0
    for one in ids:
        with campaign_lock(paths.locks(), one):
            failed += _sync_one(store, one, jobs, console)
    return 1 if failed else 0


def _sync_one(store: Store, campaign_id: str, jobs: int, console: Console) -> int:
    ctx = open_context(store, campaign_id)
    records = tracked(store, campaign_id)
    changed = failed = 0

    def fetch(record: RepoRecord) -> MergeRequest:
        repo = ctx.repos.get(record.repo)
        if repo is None:
            raise ForgeError(f"{record.repo} no longer exists on the forge")
        assert record.mr_number is not None
        return ctx.forge.get_mr(repo, record.mr_number)

    for record, result in concurrently(fetch, records, jobs):
        if isinstance(result, Exception):
            failed += 1
            store.record(record, [("sync-failed", redact(str(result)))])
            continue
        events = _apply_mr(record, result)
        if events:
            changed += 1
            store.record(record, events)
    console.print(
        f"{campaign_id}: synced {len(records)} merge requests, {changed} changed, {failed} failed"
    )
    return failed


def _ready(mr: MergeRequest, allow_no_pipeline: bool) -> str | None:
    """Why this MR must not be merged now, or None when it may."""
    if mr.state != "open":
        return f"is {mr.state}"
    if mr.draft:
        return "is a draft"
    if not mr.approved:
        return "is not approved" + (
            f" ({mr.approvals_left} approvals left)" if mr.approvals_left else ""
        )
    if mr.pipeline != "success" and not (mr.pipeline is None and allow_no_pipeline):
        return f"pipeline is {mr.pipeline or 'missing'}"
    if mr.has_conflicts or mr.mergeable is False:
        return f"is not mergeable ({mr.merge_status or 'conflicts'})"
    if not mr.head_sha:
        return "has no head commit"
    return None


def merge(
    store: Store,
    *,
    campaign_id: str,
    auto: bool,
    dry_run: bool,
    allow_no_pipeline: bool,
    jobs: int,
    out: Console,
) -> int:
    with campaign_lock(paths.locks(), campaign_id):
        ctx = open_context(store, campaign_id)
        records = [r for r in tracked(store, campaign_id) if r.state == "mr-open"]

        def act(record: RepoRecord) -> tuple[MergeRequest, str]:
            repo = ctx.repos.get(record.repo)
            if repo is None:
                raise ForgeError(f"{record.repo} no longer exists on the forge")
            assert record.mr_number is not None
            mr = ctx.forge.get_mr(repo, record.mr_number)
            why_not = _ready(mr, allow_no_pipeline)
            if (
                auto
                and why_not
                and why_not.startswith("pipeline is")
                and mr.pipeline in ("running", "pending")
            ):
                why_not = None  # auto-merge waits for exactly this pipeline
            if why_not:
                return mr, f"skipped: {why_not}"
            if dry_run:
                return mr, "would merge" + (" when the pipeline succeeds" if auto else "")
            assert mr.head_sha is not None
            merged = ctx.forge.merge_mr(repo, mr, sha=mr.head_sha, auto=auto)
            return merged, "merged" if merged.state == "merged" else "auto-merge set"

        table = Table(show_edge=False, header_style="bold")
        table.add_column("repo")
        table.add_column("MR")
        table.add_column("result")
        failures = 0
        for record, result in concurrently(act, records, jobs):
            if isinstance(result, Exception):
                failures += 1
                table.add_row(record.repo, record.mr_url, f"failed: {redact(str(result))}")
                if not dry_run:
                    store.record(record, [("merge-failed", redact(str(result)))])
                continue
            mr, verdict = result
            table.add_row(record.repo, mr.url, verdict)
            if dry_run:
                continue
            events = _apply_mr(record, mr)
            if verdict == "auto-merge set":
                events.append(("auto-merge", mr.url))
            if events:
                store.record(record, events)
        out.print(table)
        return 1 if failures else 0


def close(
    store: Store, *, campaign_id: str, pattern: str | None, reason: str, jobs: int, out: Console
) -> int:
    if not reason.strip():
        raise UsageError("--reason must say why the merge requests are closed")
    with campaign_lock(paths.locks(), campaign_id):
        ctx = open_context(store, campaign_id)
        records = [r for r in tracked(store, campaign_id, pattern) if r.state == "mr-open"]
        comment = f"Closed by fleetchange (campaign `{campaign_id}`): {reason}"

        def act(record: RepoRecord) -> MergeRequest:
            repo = ctx.repos.get(record.repo)
            if repo is None:
                raise ForgeError(f"{record.repo} no longer exists on the forge")
            assert record.mr_number is not None
            mr = ctx.forge.get_mr(repo, record.mr_number)
            if mr.state == "open":
                mr = ctx.forge.close_mr(repo, mr, comment)
            ctx.forge.delete_branch(repo, record.branch or ctx.campaign.branch)
            return mr

        failures = closed = 0
        for record, result in concurrently(act, records, jobs):
            if isinstance(result, Exception):
                failures += 1
                out.print(f"{record.repo}: could not close: {redact(str(result))}")
                store.record(record, [("close-failed", redact(str(result)))])
                continue
            closed += 1
            events = _apply_mr(record, result)
            record.reason = f"closed: {reason}"
            store.record(
                record, [*events, ("branch-deleted", record.branch or ctx.campaign.branch)]
            )
        out.print(
            f"{campaign_id}: closed {closed} merge request(s){f', {failures} failed' if failures else ''}"
        )
        return 1 if failures else 0
