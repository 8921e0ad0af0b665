"""``fleetchange apply``: run a campaign over its target repositories."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .. import paths
from ..campaign import Campaign
from ..errors import UsageError
from ..executors.base import Executor
from ..executors.local import LocalExecutor
from ..forges.base import ForgeAuthError, ForgeError, RepoRef
from ..locking import campaign_lock
from ..pipeline import Outcome, Prior, RepoJob, forge_for, run_repo
from ..rollout import pace
from ..selection import select, skip_reason
from ..state import FAILED, RepoRecord, Store


@dataclass(frozen=True)
class ApplyOptions:
    jobs: int
    limit: int | None = None
    only: tuple[str, ...] = ()
    dry_run: bool = False
    force: bool = False
    executor: str = "threads"
    scheduler: str | None = None
    use_llm_cache: bool = True
    next_wave: bool = False


def default_jobs() -> int:
    """Repos wait on git transports and the forge far more than on CPU: 8 per core, at most 32."""
    return min(32, 8 * (os.cpu_count() or 1))


def check_home_writable(home: Path) -> None:
    """Fail fast, before any push, when we could not record what we did."""
    try:
        paths.ensure_private_dir(home)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise UsageError(
            f"FLEETCHANGE_HOME {home} is not writable: {exc.strerror or exc}"
        ) from None


def make_executor(options: ApplyOptions) -> Executor:
    if options.executor == "dask":
        from ..executors.dask import DaskExecutor

        return DaskExecutor(options.scheduler, jobs=options.jobs)
    return LocalExecutor(options.jobs, processes=options.executor == "processes")


def list_targets(campaign: Campaign, only: tuple[str, ...]) -> list[RepoRef]:
    try:
        forge = forge_for(campaign.targets)
        return list(select(forge.list_repos(), campaign.targets, only))
    except ForgeAuthError as exc:
        raise UsageError(str(exc)) from None
    except ForgeError as exc:
        raise UsageError(f"cannot list repositories: {exc}") from None


def apply(campaign: Campaign, *, options: ApplyOptions, console: Console, out: Console) -> int:
    home = paths.home()
    check_home_writable(home)
    with campaign_lock(paths.locks(), campaign.id):
        store = Store(paths.state_db())
        try:
            return _apply_locked(campaign, store, options, console, out)
        finally:
            store.close()


def _apply_locked(
    campaign: Campaign, store: Store, options: ApplyOptions, console: Console, out: Console
) -> int:
    repos = list_targets(campaign, options.only)
    if not options.dry_run:
        store.upsert_campaign(
            id=campaign.id,
            title=campaign.title,
            file=str(campaign.file),
            version=campaign.version,
            forge=campaign.targets.forge,
            branch=campaign.branch,
        )
    targets: list[RepoRef] = []
    skipped = 0
    for repo in repos:
        reason = skip_reason(repo, campaign.targets)
        if reason is None:
            targets.append(repo)
            continue
        skipped += 1
        if not options.dry_run:
            previous = store.repo(campaign.id, repo.name)
            if previous is None or previous.state != "skipped" or previous.reason != reason:
                store.record(
                    RepoRecord(
                        campaign=campaign.id, repo=repo.name, state="skipped", reason=reason
                    ),
                    [("skipped", reason)],
                )
    if options.limit is not None:
        targets = targets[: options.limit]

    runner = Runner(campaign, store, options, console=console, out=out)
    try:
        with runner.progress:
            runner.task = runner.progress.add_task(
                f"apply {campaign.id}", total=len(targets), counts=""
            )
            if options.dry_run or not campaign.rollout.paced:
                runner.run(targets)
            else:
                _paced(runner, targets, options)
    finally:
        runner.executor.close()
    if runner.fatal:
        raise UsageError(runner.fatal)
    _summary(console, campaign, runner.tally, runner.unchanged, skipped, options.dry_run)
    if runner.pace_note:
        console.print(runner.pace_note)
    return 1 if any(runner.tally[state] for state in FAILED) else 0


class Runner:
    """Streams jobs to the executor and records each outcome as it arrives."""

    def __init__(
        self,
        campaign: Campaign,
        store: Store,
        options: ApplyOptions,
        *,
        console: Console,
        out: Console,
    ) -> None:
        self.campaign, self.store, self.options, self.out = campaign, store, options, out
        self.executor = make_executor(options)
        self.tally: Counter[str] = Counter()
        self.unchanged = 0
        self.fatal: str | None = None
        self.pace_note = ""
        self.budget = token_budget(campaign)
        self.spent = sum(store.tokens(campaign.id)[k] for k in ("prompt", "completion"))
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def jobs(self, repos: list[RepoRef], *, probe: bool) -> Iterator[RepoJob]:
        for repo in repos:  # built as workers free up, so the budget left is current
            yield RepoJob(
                campaign=self.campaign,
                repo=repo,
                prior=_prior(self.store, self.campaign.id, repo.name),
                home=None if self.options.executor == "dask" else paths.home(),
                force=self.options.force,
                dry_run=self.options.dry_run or probe,
                use_llm_cache=self.options.use_llm_cache,
                token_budget=None if self.budget is None else max(0, self.budget - self.spent),
            )

    def run(self, repos: list[RepoRef], *, probe: bool = False) -> list[RepoRef]:
        """Process ``repos``; with ``probe``, change nothing and return those that would change."""
        would: list[RepoRef] = []
        by_name = {r.name: r for r in repos}
        if self.fatal or not repos:
            return would
        for outcome in _results(self.executor, self.jobs(repos, probe=probe)):
            self.spent += outcome.usage.get("prompt_tokens", 0) + outcome.usage.get(
                "completion_tokens", 0
            )
            if probe and outcome.state == "would-change":
                would.append(by_name[outcome.repo])
                continue
            self.tally[outcome.state] += 1
            if outcome.unchanged:
                self.unchanged += 1
            elif self.options.dry_run:
                _print_dry_run(self.out, outcome)
            else:
                self.store.record(_to_record(self.campaign, outcome, self.store), outcome.events)
            if outcome.fatal:
                self.fatal = outcome.reason
                break
            self.advance()
        return sorted(would, key=lambda r: r.name)

    def advance(self) -> None:
        assert self.task is not None
        counts = " ".join(f"{k}:{v}" for k, v in sorted(self.tally.items()))
        self.progress.update(self.task, advance=1, counts=counts)


def _paced(runner: Runner, targets: list[RepoRef], options: ApplyOptions) -> None:
    """Upkeep first, then new MRs only as far as the rollout allows; the rest wait as pending."""
    campaign, store = runner.campaign, runner.store
    records = {r.repo: r for r in store.repos(campaign.id)}
    tracked = {"mr-open", "merged", "closed", "diverged"}
    upkeep = [r for r in targets if r.name in records and records[r.name].state in tracked]
    fresh = [r for r in targets if r not in upkeep]
    runner.run(upkeep)
    waiting = runner.run(fresh, probe=True)
    next_wave = options.next_wave
    reason = ""
    while waiting and not runner.fatal:
        now = pace(campaign.rollout, store, campaign.id, targets=len(targets), next_wave=next_wave)
        next_wave = False
        if now.allowed == 0:
            reason = now.reason
            runner.pace_note = f"{len(waiting)} repo(s) wait: {reason}. The next apply continues."
            break
        batch = waiting if now.allowed is None else waiting[: now.allowed]
        waiting = waiting[len(batch) :]
        runner.run(batch)
    if runner.fatal:
        return  # the run stops; the repos not reached keep whatever they had
    for repo in waiting:
        previous = store.repo(campaign.id, repo.name)
        if previous is None or previous.state != "pending" or previous.reason != reason:
            store.record(
                RepoRecord(
                    campaign=campaign.id,
                    repo=repo.name,
                    state="pending",
                    reason=reason,
                    version=campaign.version,
                ),
                [("pending", reason)],
            )
        runner.tally["pending"] += 1
        runner.advance()


def _results(executor: Executor, jobs: Iterator[RepoJob]) -> Iterator[Outcome]:
    yield from executor.map_unordered(run_repo, jobs)


def _prior(store: Store, campaign: str, repo: str) -> Prior | None:
    record = store.repo(campaign, repo)
    if record is None:
        return None
    return Prior(
        state=record.state,
        version=record.version,
        base_sha=record.base_sha,
        head_sha=record.head_sha,
        branch=record.branch,
    )


def token_budget(campaign: Campaign) -> int | None:
    """The smallest ``max_tokens`` of the campaign's model steps: a campaign-wide cap."""
    caps = [s.options["max_tokens"] for s in campaign.steps if s.options.get("max_tokens")]
    return min(caps) if caps else None


def _to_record(campaign: Campaign, outcome: Outcome, store: Store) -> RepoRecord:
    mr = outcome.mr
    previous = store.repo(campaign.id, outcome.repo)
    usage = outcome.usage
    return RepoRecord(
        campaign=campaign.id,
        repo=outcome.repo,
        state=outcome.state,
        reason=outcome.reason,
        version=campaign.version,
        base_sha=outcome.base_sha,
        head_sha=outcome.head_sha,
        default_branch=outcome.default_branch,
        mr_number=mr.number if mr else None,
        mr_url=mr.url if mr else "",
        mr_state=mr.state if mr else "",
        pipeline=(mr.pipeline or "") if mr else "",
        approved=None if mr is None or mr.approved is None else int(mr.approved),
        files=outcome.files,
        test_log=outcome.test_log,
        prompt_tokens=(previous.prompt_tokens if previous else 0) + usage.get("prompt_tokens", 0),
        completion_tokens=(previous.completion_tokens if previous else 0)
        + usage.get("completion_tokens", 0),
        model_calls=(previous.model_calls if previous else 0) + usage.get("calls", 0),
        branch=previous.branch if previous else "",
    )


def _print_dry_run(out: Console, outcome: Outcome) -> None:
    if outcome.diff:
        out.print(
            f"# {outcome.repo}: would change {len(outcome.files)} file(s)",
            markup=False,
            highlight=False,
        )
        out.print(outcome.diff, markup=False, highlight=False, soft_wrap=True)
    elif outcome.state in FAILED:
        out.print(
            f"# {outcome.repo}: {outcome.state}: {outcome.reason}", markup=False, highlight=False
        )


def _summary(
    console: Console,
    campaign: Campaign,
    tally: Counter[str],
    unchanged: int,
    skipped: int,
    dry_run: bool,
) -> None:
    table = Table(title=f"{campaign.id}: {'dry run' if dry_run else 'this run'}", show_edge=False)
    table.add_column("state")
    table.add_column("repos", justify="right")
    for state, count in sorted(tally.items()):
        table.add_row(state, str(count))
    if skipped:
        table.add_row("skipped (archived, fork, topic)", str(skipped))
    console.print(table)
    if unchanged:
        console.print(
            f"{unchanged} repo(s) unchanged since the last run were not processed again (use --force)."
        )
    if not dry_run:
        console.print(f"See everything with: fleetchange status {campaign.id}")
