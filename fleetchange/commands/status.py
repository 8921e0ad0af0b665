"""``fleetchange status``: where every repository of a campaign stands."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import UsageError
from ..state import RepoRecord, Store

STATE_STYLE = {
    "merged": "green",
    "mr-open": "cyan",
    "error": "bold red",
    "test-failed": "red",
    "diverged": "yellow",
    "closed": "dim",
    "no-match": "dim",
    "no-change": "dim",
    "skipped": "dim",
}
# what a human wants to see first: trouble, then work in flight, then the rest
STATE_ORDER = [
    "error",
    "test-failed",
    "diverged",
    "mr-open",
    "closed",
    "merged",
    "no-change",
    "no-match",
    "skipped",
]


def campaign_json(store: Store, campaign_id: str) -> dict[str, Any]:
    records = store.repos(campaign_id)
    return {
        "campaign": campaign_id,
        "counts": store.counts(campaign_id),
        "tokens": store.tokens(campaign_id),
        "repos": [_repo_json(r) for r in records],
    }


def _repo_json(record: RepoRecord) -> dict[str, Any]:
    return {
        "repo": record.repo,
        "state": record.state,
        "mr_url": record.mr_url or None,
        "reason": record.reason or None,
        "mr_state": record.mr_state or None,
        "pipeline": record.pipeline or None,
        "approved": None if record.approved is None else bool(record.approved),
        "files": record.files,
        "base_sha": record.base_sha or None,
        "head_sha": record.head_sha or None,
        "updated_at": record.updated_at,
        "tokens": {
            "prompt": record.prompt_tokens,
            "completion": record.completion_tokens,
            "calls": record.model_calls,
        },
    }


def status(
    store: Store,
    *,
    campaign_id: str | None,
    as_json: bool,
    show_all: bool,
    limit: int,
    out: Console,
) -> int:
    if campaign_id is not None and store.campaign(campaign_id) is None:
        known = ", ".join(c.id for c in store.campaigns()) or "none yet"
        raise UsageError(f"unknown campaign {campaign_id!r} (known: {known})")
    ids = [campaign_id] if campaign_id else [c.id for c in store.campaigns()]
    if as_json:
        payload: Any = (
            campaign_json(store, ids[0]) if campaign_id else [campaign_json(store, i) for i in ids]
        )
        out.print_json(json.dumps(payload)) if out.is_terminal else print(
            json.dumps(payload, indent=2)
        )
        return 0
    if not ids:
        out.print(
            "No campaigns yet. Start one with: fleetchange apply CAMPAIGN.toml (or fleetchange demo)"
        )
        return 0
    for one in ids:
        _print_campaign(store, one, show_all=show_all, limit=limit, out=out)
    return 0


def _print_campaign(
    store: Store, campaign_id: str, *, show_all: bool, limit: int, out: Console
) -> None:
    record = store.campaign(campaign_id)
    counts = store.counts(campaign_id)
    total = sum(counts.values())
    title = f"[bold]{campaign_id}[/] — {record.title if record else ''}"
    out.print(title)
    summary = Table(show_edge=False, box=None, padding=(0, 2))
    for state in sorted(counts, key=_order):
        summary.add_column(state, justify="right", style=STATE_STYLE.get(state, ""))
    summary.add_column("total", justify="right", style="bold")
    summary.add_row(*[str(counts[s]) for s in sorted(counts, key=_order)], str(total))
    out.print(summary)
    tokens = store.tokens(campaign_id)
    if tokens["calls"]:
        out.print(
            f"model tokens: {tokens['prompt']:,} prompt + {tokens['completion']:,} completion"
            f" in {tokens['calls']:,} calls"
        )
    # trouble first, then work in flight; only the rows shown are read (10,000 repos stay fast)
    shown = store.repos(campaign_id, order=STATE_ORDER, limit=None if show_all else limit)
    with_pipeline = any(r.pipeline for r in shown)
    with_approval = any(r.approved for r in shown)  # a column of "no" says nothing
    table = Table(show_edge=False, header_style="bold")
    width = max((len(r.repo) for r in shown), default=4)
    table.add_column("repo", no_wrap=True, min_width=min(width, 40))
    table.add_column("state", no_wrap=True, min_width=11)
    mr_width = max((len(r.mr_url) for r in shown), default=2)
    table.add_column("MR", no_wrap=True, min_width=min(mr_width, 45))
    if with_pipeline:
        table.add_column("pipeline", no_wrap=True)
    if with_approval:
        table.add_column("approved", no_wrap=True)
    table.add_column("reason", no_wrap=True, overflow="ellipsis", max_width=70)
    for r in shown:
        row = [r.repo, f"[{STATE_STYLE.get(r.state, '')}]{r.state}[/]", r.mr_url]
        if with_pipeline:
            row.append(r.pipeline)
        if with_approval:
            row.append("" if r.approved is None else ("yes" if r.approved else "no"))
        row.append(r.reason.splitlines()[0] if r.reason else "")
        table.add_row(*row)
    out.print(table)
    if len(shown) < total:
        out.print(
            f"… {total - len(shown)} more repos (--all to list every one, --json for scripts)"
        )
    from ..report import print_burndown

    print_burndown(out, store, campaign_id)


def _order(state: str) -> int:
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


def campaigns(store: Store, *, as_json: bool, out: Console) -> int:
    rows = store.campaigns()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": c.id,
                        "title": c.title,
                        "file": c.file,
                        "forge": c.forge,
                        "version": c.version,
                        "counts": store.counts(c.id),
                        "updated_at": c.updated_at,
                    }
                    for c in rows
                ],
                indent=2,
            )
        )
        return 0
    if not rows:
        out.print("No campaigns yet.")
        return 0
    table = Table(show_edge=False, header_style="bold")
    for column in ("campaign", "title", "forge", "repos", "open", "merged", "failed", "file"):
        table.add_column(column)
    for c in rows:
        counts = store.counts(c.id)
        table.add_row(
            c.id,
            c.title,
            c.forge,
            str(sum(counts.values())),
            str(counts.get("mr-open", 0)),
            str(counts.get("merged", 0)),
            str(counts.get("error", 0) + counts.get("test-failed", 0)),
            c.file,
        )
    out.print(table)
    return 0
