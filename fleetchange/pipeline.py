"""The per-repo pipeline: a pure function from a :class:`RepoJob` to an :class:`Outcome`.

It runs on any executor (thread, process, Dask worker): inputs and outputs are
plain picklable data, and it never touches the state database; the coordinator
records the outcome.  Side effects on the forge are idempotent by construction:
the push is a compare-and-swap (``--force-with-lease`` on the sha we saw) and is
skipped when the branch already holds the same tree on the same base, and the
MR is looked up by source branch before it is created.
"""

from __future__ import annotations

import functools
import shutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import mrbody, paths
from .campaign import Campaign, Step, Targets
from .changes import KINDS
from .changes.base import StepContext
from .forges import make_forge
from .forges.base import Forge, ForgeAuthError, ForgeError, MergeRequest, MRSpec, RepoRef
from .gitops import GitError, git, ls_remote, redact
from .pathglob import matches
from .process import run_with_timeout
from .template import fill

TRAILER = "Fleetchange-Campaign"


@dataclass(frozen=True)
class Prior:
    """What the state database knew about this repo before the run."""

    state: str
    version: str
    base_sha: str
    head_sha: str


@dataclass(frozen=True)
class RepoJob:
    campaign: Campaign
    repo: RepoRef
    prior: Prior | None
    # None on remote workers: they keep mirrors and workspaces under their own home
    home: Path | None = None
    force: bool = False
    dry_run: bool = False
    use_llm_cache: bool = True
    token_budget: int | None = None  # model tokens the campaign may still spend

    def folder(self, name: str) -> Path:
        return (self.home or paths.home()) / name


@dataclass
class Outcome:
    repo: str
    state: str
    reason: str = ""
    base_sha: str = ""
    head_sha: str = ""
    default_branch: str = ""
    files: list[str] = field(default_factory=list)
    test_log: str = ""
    diff: str = ""
    mr: MergeRequest | None = None
    unchanged: bool = False  # incremental skip: nothing was looked at beyond ls-remote
    events: list[tuple[str, str]] = field(default_factory=list)
    fatal: bool = False  # e.g. the forge rejected our credentials: stop the run
    usage: dict[str, int] = field(default_factory=dict)  # model tokens and calls

    def step(self, state: str, detail: str = "") -> None:
        self.events.append((state, detail))


@functools.lru_cache(maxsize=8)
def forge_for(targets: Targets) -> Forge:
    """One forge client per process and campaign target (clients pool connections)."""
    return make_forge(targets)


def slug(name: str) -> str:
    return name.replace("/", "__")


def run_repo(job: RepoJob) -> Outcome:
    """Process one repository; every failure becomes an ``error`` outcome for it alone."""
    outcome = Outcome(
        repo=job.repo.name, state="error", default_branch=job.repo.default_branch or ""
    )
    try:
        _run(job, forge_for(job.campaign.targets), outcome)
    except ForgeAuthError as exc:
        outcome.state, outcome.reason, outcome.fatal = "error", redact(str(exc)), True
    except (GitError, ForgeError, OSError, UnicodeError) as exc:
        outcome.state, outcome.reason = "error", redact(str(exc))
    except Exception as exc:  # a bug: keep the run going, keep the evidence
        outcome.state = "error"
        outcome.reason = redact(f"internal error: {type(exc).__name__}: {exc}")
        outcome.test_log = redact(traceback.format_exc())
    if outcome.state == "error" and not any(s == "error" for s, _ in outcome.events):
        outcome.step("error", outcome.reason)
    return outcome


def _run(job: RepoJob, forge: Forge, out: Outcome) -> None:
    campaign, repo = job.campaign, job.repo
    if repo.default_branch is None:
        out.state, out.reason = "skipped", "empty repository (no default branch)"
        out.step(out.state, out.reason)
        return
    env = forge.git_env()
    mirrors = job.folder("mirrors") / forge.key
    mirrors.mkdir(parents=True, exist_ok=True)
    default_ref = f"refs/heads/{repo.default_branch}"
    branch_ref = f"refs/heads/{campaign.branch}"
    refs = ls_remote(repo.clone_url, default_ref, branch_ref, cwd=mirrors, env=env)
    base = refs.get(default_ref)
    remote_branch = refs.get(branch_ref)
    if base is None:
        out.state, out.reason = "skipped", f"empty repository (no commit on {repo.default_branch})"
        out.step(out.state, out.reason)
        return
    out.base_sha = base
    if _unchanged_since(job.prior, job, base, remote_branch):
        assert job.prior is not None
        out.state, out.unchanged, out.head_sha = job.prior.state, True, job.prior.head_sha
        return

    mirror = _mirror(job, mirrors, base, remote_branch, env)
    out.step("resolved", f"base {base[:12]}")

    if campaign.targets.contains and not _grep_any(mirror, base, campaign.targets.contains, ()):
        return _settle(
            job,
            forge,
            out,
            remote_branch,
            "no-match",
            "default branch does not contain the pattern",
        )
    candidates = [_candidates(mirror, base, step) for step in campaign.steps]
    if all(
        KINDS[s.kind].USES_CANDIDATES and not c
        for s, c in zip(campaign.steps, candidates, strict=True)
    ):
        return _settle(
            job,
            forge,
            out,
            remote_branch,
            "no-match",
            "no file matches the changes' paths and grep",
        )

    workdir = job.folder("work") / campaign.id / slug(repo.name)
    _fresh_worktree(mirror, workdir, base)
    try:
        _change_test_push(job, forge, out, mirror, workdir, base, remote_branch, candidates, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        git("worktree", "prune", cwd=mirror, check=False)


def _unchanged_since(
    prior: Prior | None, job: RepoJob, base: str, remote_branch: str | None
) -> bool:
    """Same campaign version on the same base, and the branch as we left it: nothing to redo."""
    if prior is None or job.force or job.dry_run:
        return False
    if prior.version != job.campaign.version or prior.base_sha != base:
        return False
    if prior.state in ("no-match", "no-change", "test-failed", "llm-failed", "skipped"):
        return True
    return prior.state in ("mr-open", "merged", "closed", "diverged") and remote_branch == (
        prior.head_sha or None
    )


def _mirror(
    job: RepoJob, mirrors: Path, base: str, remote_branch: str | None, env: dict[str, str]
) -> Path:
    """The bare mirror of the repo holding ``base`` (and the campaign branch, if any)."""
    repo = job.repo
    mirror = mirrors / f"{repo.name}.git"
    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = mirror.with_name(mirror.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        git("init", "--bare", "-q", str(tmp), cwd=mirror.parent)
        tmp.rename(mirror)
    refspecs = []
    if not _has(mirror, base):
        refspecs.append(f"+refs/heads/{repo.default_branch}:refs/heads/{repo.default_branch}")
    if remote_branch and not _has(mirror, remote_branch):
        refspecs.append(f"+refs/heads/{job.campaign.branch}:refs/fleetchange/{job.campaign.branch}")
    if refspecs:
        git(
            "fetch",
            "-q",
            "--no-tags",
            "--no-write-fetch-head",
            repo.clone_url,
            *refspecs,
            cwd=mirror,
            env=env,
        )
    return mirror


def _has(mirror: Path, sha: str) -> bool:
    try:
        git("cat-file", "-e", f"{sha}^{{commit}}", cwd=mirror, timeout=60)
        return True
    except GitError:
        return False


def _pathspecs(step: Step) -> list[str]:
    return [f":(glob){p}" for p in step.paths]


def _grep_any(
    mirror: Path, base: str, pattern: str, pathspecs: list[str] | tuple[str, ...]
) -> bool:
    try:
        git("grep", "-q", "-I", "-E", "-e", pattern, base, "--", *pathspecs, cwd=mirror)
        return True
    except GitError as exc:
        if exc.returncode == 1:
            return False
        raise


def _candidates(mirror: Path, base: str, step: Step) -> list[str]:
    """Files the step may touch, read off the base commit without a checkout."""
    if step.grep:
        try:
            out = git(
                "grep", "-l", "-I", "-E", "-e", step.grep, base, "--", *_pathspecs(step), cwd=mirror
            )
        except GitError as exc:
            if exc.returncode == 1:
                return []
            raise
        return [line.split(":", 1)[1] for line in out.splitlines() if line]
    out = git("ls-tree", "-r", "-z", base, cwd=mirror)
    files = []
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, kind, _ = meta.split(" ", 2)
        # symlinks are never edited through; submodules are not ours to change
        if kind == "blob" and mode != "120000" and matches(path, step.paths):
            files.append(path)
    return files


def _fresh_worktree(mirror: Path, workdir: Path, base: str) -> None:
    if workdir.exists():  # left by a crashed run
        shutil.rmtree(workdir)
    git("worktree", "prune", cwd=mirror, check=False)
    workdir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    git("worktree", "add", "-q", "--detach", "--force", str(workdir), base, cwd=mirror)
    workdir.chmod(0o700)


def _change_test_push(
    job: RepoJob,
    forge: Forge,
    out: Outcome,
    mirror: Path,
    workdir: Path,
    base: str,
    remote_branch: str | None,
    candidates: list[list[str]],
    env: dict[str, str],
) -> None:
    campaign, repo = job.campaign, job.repo
    reports: list[mrbody.StepReport] = []
    problems: list[str] = []
    for step, files in zip(campaign.steps, candidates, strict=True):
        ctx = StepContext(
            workdir=workdir,
            repo=repo.name,
            campaign_id=campaign.id,
            candidates=files,
            default_branch=repo.default_branch or "",
            title=campaign.title,
            home=job.home,
            use_llm_cache=job.use_llm_cache,
            token_budget=None
            if job.token_budget is None
            else job.token_budget
            - out.usage.get("prompt_tokens", 0)
            - out.usage.get("completion_tokens", 0),
        )
        result = KINDS[step.kind].apply(step.options, ctx)
        for key, value in result.usage.items():
            out.usage[key] = out.usage.get(key, 0) + value
        if result.failed:
            out.state = result.failed_state or "error"
            out.reason = f"step {step.index + 1} ({step.name}): {result.failed}"
            out.step(out.state, out.reason)
            return
        problems += result.problems
        reports.append(
            mrbody.StepReport(
                step.name, result.summary, str(step.options.get("version", "")), tuple(result.notes)
            )
        )

    git("add", "-A", cwd=workdir)
    tree = git("write-tree", cwd=workdir)
    changed = git("diff", "--cached", "--name-only", "-z", base, cwd=workdir).split("\0")
    out.files = [f for f in changed if f]
    if tree == git("rev-parse", f"{base}^{{tree}}", cwd=workdir):
        _settle(job, forge, out, remote_branch, "no-change", "; ".join(problems[:3]))
        return
    out.step("transformed", f"{len(out.files)} files")
    if job.dry_run:
        out.state, out.diff = "would-change", git("diff", "--cached", base, cwd=workdir)
        return

    test_summary = "No test command is configured for this campaign."
    if campaign.test.command:
        done = run_with_timeout(campaign.test.command, cwd=workdir, timeout=campaign.test.timeout)
        logs = job.folder("logs") / campaign.id
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{slug(repo.name)}.log").write_text(redact(done.output))
        if done.timed_out or done.returncode != 0:
            why = (
                f"timed out after {campaign.test.timeout}s"
                if done.timed_out
                else f"exited {done.returncode}"
            )
            out.state, out.reason, out.test_log = (
                "test-failed",
                f"`{campaign.test.command}` {why}",
                redact(done.tail),
            )
            out.step(out.state, out.reason)
            return
        test_summary = (
            f"`{campaign.test.command}` passed in {done.seconds:.1f}s on the changed code."
        )
        out.step("tested", f"{done.seconds:.1f}s")

    head = _commit(job, workdir, tree, base, reports)
    if remote_branch and remote_branch != head:
        if _same_change(mirror, remote_branch, tree, base):
            head = remote_branch  # the branch already holds exactly this change
        elif not _ours(mirror, remote_branch, campaign.id):
            out.state = "diverged"
            out.reason = (
                f"{campaign.branch} has commits fleetchange did not make; left to its owner"
            )
            out.head_sha = remote_branch
            out.step(out.state, out.reason)
            return
    if head != remote_branch:
        git(
            "push",
            "-q",
            "--no-verify",
            repo.clone_url,
            f"{head}:refs/heads/{campaign.branch}",
            f"--force-with-lease=refs/heads/{campaign.branch}:{remote_branch or ''}",
            cwd=workdir,
            env=env,
            timeout=300,
        )
        out.step("pushed", head[:12])
    out.head_sha = head

    body = mrbody.render(
        campaign,
        repo=repo.name,
        files=out.files,
        steps=reports,
        problems=problems,
        test_summary=test_summary,
    )
    spec = MRSpec(
        source_branch=campaign.branch,
        target_branch=repo.default_branch or "",
        title=fill(campaign.merge_request.title, {"repo": repo.name, "campaign": campaign.id}),
        body=body,
        labels=campaign.merge_request.labels,
        draft=campaign.merge_request.draft,
        assignees=campaign.merge_request.assignees,
        reviewers=campaign.merge_request.reviewers,
    )
    out.mr = _upsert_mr(forge, repo, spec, head, out)
    out.state = {"open": "mr-open", "merged": "merged", "closed": "closed"}[out.mr.state]


def _settle(
    job: RepoJob, forge: Forge, out: Outcome, remote_branch: str | None, state: str, reason: str
) -> None:
    """The change makes no diff on this base.  If an MR was opened earlier, say what became of it:
    merged (that is why), or still open though no longer needed (close it, with a comment)."""
    out.state, out.reason = state, reason
    had_mr = remote_branch is not None or (
        job.prior is not None and job.prior.state in ("mr-open", "merged", "closed")
    )
    mr = forge.find_mr(job.repo, job.campaign.branch) if had_mr and not job.dry_run else None
    if mr is not None and mr.state == "merged":
        out.state, out.reason, out.mr = "merged", "", mr
    elif mr is not None and mr.state == "open":
        out.mr = forge.close_mr(
            job.repo,
            mr,
            "fleetchange: the default branch no longer needs this change "
            "(it was made another way), so this merge request is closed.",
        )
        out.state, out.reason = "closed", "change no longer needed on the default branch"
    out.step(out.state, out.reason)


def _commit(
    job: RepoJob, workdir: Path, tree: str, base: str, reports: list[mrbody.StepReport]
) -> str:
    campaign = job.campaign
    subject = fill(
        campaign.commit.message,
        {"repo": job.repo.name, "campaign": campaign.id, "title": campaign.title},
    )
    body = "\n".join(f"- {r.name}: {r.summary}" for r in reports)
    message = f"{subject}\n\n{body}\n\n{TRAILER}: {campaign.id}\nFleetchange-Version: {campaign.version}\n"
    identity = {
        "GIT_AUTHOR_NAME": campaign.commit.author_name,
        "GIT_AUTHOR_EMAIL": campaign.commit.author_email,
        "GIT_COMMITTER_NAME": campaign.commit.author_name,
        "GIT_COMMITTER_EMAIL": campaign.commit.author_email,
    }
    return git("commit-tree", tree, "-p", base, cwd=workdir, env=identity, input=message.encode())


def _same_change(mirror: Path, sha: str, tree: str, base: str) -> bool:
    line = git("log", "-1", "--format=%T %P", sha, cwd=mirror)
    return line == f"{tree} {base}"


def _ours(mirror: Path, sha: str, campaign_id: str) -> bool:
    """Is the branch tip a fleetchange commit of this campaign (so replacing it loses nothing)?"""
    message = git("log", "-1", "--format=%B", sha, cwd=mirror)
    return f"{TRAILER}: {campaign_id}" in message


def _upsert_mr(forge: Forge, repo: RepoRef, spec: MRSpec, head: str, out: Outcome) -> MergeRequest:
    existing = forge.find_mr(repo, spec.source_branch)
    if existing is not None and existing.state == "open":
        if (existing.title, existing.body, tuple(sorted(existing.labels)), existing.draft) != (
            spec.title,
            spec.body,
            tuple(sorted(spec.labels)),
            spec.draft,
        ):
            existing = forge.update_mr(repo, existing, spec)
            out.step("mr-updated", existing.url)
        return existing
    if existing is not None and existing.head_sha == head:
        return existing  # merged, or closed by a person: this exact change was already decided
    mr = forge.create_mr(repo, spec)
    out.step("mr-open", mr.url)
    return mr
