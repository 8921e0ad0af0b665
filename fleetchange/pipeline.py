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

from . import codeowners, killpoints, mrbody, paths
from .campaign import Campaign, Step, Targets
from .changes import KINDS
from .changes.base import AUTH_FAILED, StepContext
from .forges import make_forge
from .forges.base import Forge, ForgeAuthError, ForgeError, MergeRequest, MRSpec, RepoRef
from .gitops import GitError, git, ls_remote, read_ref, redact
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
    branch: str = ""  # set for MRs adopted with `fleetchange import`


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
    if not outcome.unchanged and (not outcome.events or outcome.events[-1][0] != outcome.state):
        # the history always ends in the state recorded, whichever path got there
        outcome.step(outcome.state, outcome.reason or (outcome.mr.url if outcome.mr else ""))
    return outcome


def _run(job: RepoJob, forge: Forge, out: Outcome) -> None:
    campaign, repo = job.campaign, job.repo
    if repo.default_branch is None:
        out.state, out.reason = "skipped", "empty repository (no default branch)"
        out.step(out.state, out.reason)
        return
    env = forge.git_env()
    mirrors = job.folder("mirrors") / forge.key
    mirror = mirrors / f"{repo.name}.git"
    branch = BranchTip(repo.clone_url, campaign.branch, mirrors, env)
    if job.prior is None and not (mirror / "HEAD").exists():
        # first sight of this repo: one clone tells us the base; no ls-remote round trip
        found = _clone_mirror(repo, mirrors, mirror, env)
        if found is None:
            return _skip_empty(job, out)
        base = found
        killpoints.reached("cloned")
    else:
        mirrors.mkdir(parents=True, exist_ok=True)
        default_ref = f"refs/heads/{repo.default_branch}"
        refs = ls_remote(
            repo.clone_url, default_ref, f"refs/heads/{campaign.branch}", cwd=mirrors, env=env
        )
        if default_ref not in refs:
            return _skip_empty(job, out)
        base = refs[default_ref]
        branch.known(refs.get(f"refs/heads/{campaign.branch}"))
        if _unchanged_since(job.prior, job, base, branch.sha):
            assert job.prior is not None
            out.state, out.unchanged, out.head_sha = job.prior.state, True, job.prior.head_sha
            return
        fetch_mirror(repo, mirrors, base, branch=campaign.branch, branch_sha=branch.sha, env=env)
    out.base_sha = base
    out.step("resolved", f"base {base[:12]}")

    files = BaseFiles(mirror, base)
    if campaign.targets.contains and not files.grep(campaign.targets.contains):
        return _settle(
            job,
            forge,
            out,
            branch,
            "no-match",
            "default branch does not contain the pattern",
        )
    candidates = [files.candidates(step) for step in campaign.steps]
    if all(
        KINDS[s.kind].USES_CANDIDATES and not c
        for s, c in zip(campaign.steps, candidates, strict=True)
    ):
        return _settle(
            job,
            forge,
            out,
            branch,
            "no-match",
            "no file matches the changes' paths and grep",
        )

    workdir = job.folder("work") / campaign.id / slug(repo.name)
    _fresh_worktree(mirror, workdir, base)
    killpoints.reached("worktree")
    try:
        _change_test_push(job, forge, out, mirrors, mirror, workdir, base, branch, candidates, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        git("worktree", "prune", cwd=mirror, check=False)


def _unchanged_since(
    prior: Prior | None, job: RepoJob, base: str, remote_branch: str | None
) -> bool:
    """Same campaign version on the same base, and the branch as we left it: nothing to redo."""
    if prior is None or job.force or job.dry_run:
        return False
    if prior.branch and prior.branch != job.campaign.branch:
        return True  # an adopted MR on someone else's branch: tracked by sync, never duplicated
    if prior.version != job.campaign.version:
        return False
    if prior.state in ("merged", "closed"):
        return True  # decided by people (or `fleetchange close`): a moved base changes nothing
    if prior.base_sha != base:
        return False
    if prior.state in ("no-match", "no-change", "test-failed", "llm-failed", "skipped"):
        return True
    return prior.state in ("mr-open", "merged", "closed", "diverged") and remote_branch == (
        prior.head_sha or None
    )


class BranchTip:
    """The campaign branch's sha on the forge, asked for only when someone needs it."""

    _UNKNOWN = "?"

    def __init__(self, url: str, branch: str, cwd: Path, env: dict[str, str]) -> None:
        self.url, self.branch, self.cwd, self.env = url, branch, cwd, env
        self._sha: str | None = self._UNKNOWN

    def known(self, sha: str | None) -> None:
        self._sha = sha

    def peek_unknown(self) -> bool:
        return self._sha == self._UNKNOWN

    def peek(self) -> str | None:
        """The sha if already known, without asking the forge."""
        return None if self._sha == self._UNKNOWN else self._sha

    @property
    def sha(self) -> str | None:
        if self._sha == self._UNKNOWN:
            ref = f"refs/heads/{self.branch}"
            self._sha = ls_remote(self.url, ref, cwd=self.cwd, env=self.env).get(ref)
        return self._sha


def _empty_template(mirrors: Path) -> str:
    """An empty template folder: git init/clone then copy no sample hooks (and are faster)."""
    folder = mirrors / ".no-template"
    folder.mkdir(parents=True, exist_ok=True)
    return f"--template={folder}"


def _clone_mirror(repo: RepoRef, mirrors: Path, mirror: Path, env: dict[str, str]) -> str | None:
    """Clone the default branch into a new bare mirror; its tip, or None for an empty repo."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = mirror.with_name(mirror.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        git(
            "clone",
            "-q",
            "--bare",
            "--no-tags",
            "--single-branch",
            _empty_template(mirrors),
            "-b",
            repo.default_branch or "",
            repo.clone_url,
            str(tmp),
            cwd=mirror.parent,
            env=env,
        )
    except GitError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if "not found in upstream" in exc.stderr or "empty repository" in exc.stderr:
            return None
        raise
    tmp.rename(mirror)
    return read_ref(mirror, f"refs/heads/{repo.default_branch}")


def _skip_empty(job: RepoJob, out: Outcome) -> None:
    out.state = "skipped"
    out.reason = f"empty repository (no commit on {job.repo.default_branch})"
    out.step(out.state, out.reason)


def fetch_mirror(
    repo: RepoRef,
    mirrors: Path,
    base: str | None,
    *,
    branch: str = "",
    branch_sha: str | None = None,
    env: dict[str, str],
) -> Path:
    """Bring ``base`` (and ``branch`` at ``branch_sha``) into the repo's mirror, creating it."""
    mirror = mirrors / f"{repo.name}.git"
    if not (mirror / "HEAD").exists():
        mirror.parent.mkdir(parents=True, exist_ok=True)
        tmp = mirror.with_name(mirror.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        git("init", "--bare", "-q", _empty_template(mirrors), str(tmp), cwd=mirror.parent)
        tmp.rename(mirror)
    refspecs = []
    if base is not None and not _has(mirror, base):
        refspecs.append(f"+refs/heads/{repo.default_branch}:refs/heads/{repo.default_branch}")
    if branch_sha and not _has(mirror, branch_sha):
        refspecs.append(f"+refs/heads/{branch}:refs/fleetchange/{branch}")
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


class BaseFiles:
    """What the base commit holds, asked of git at most once per question (no checkout)."""

    def __init__(self, mirror: Path, base: str) -> None:
        self.mirror, self.base = mirror, base
        self._grepped: dict[str, list[str]] = {}
        self._listing: list[str] | None = None

    def grep(self, pattern: str) -> list[str]:
        """Text files whose content matches ``pattern`` (POSIX extended regex)."""
        if pattern not in self._grepped:
            try:
                out = git("grep", "-l", "-z", "-I", "-E", "-e", pattern, self.base, cwd=self.mirror)
            except GitError as exc:
                if exc.returncode != 1:
                    raise
                out = ""
            prefix = f"{self.base}:"
            self._grepped[pattern] = [p.removeprefix(prefix) for p in out.split("\0") if p]
        return self._grepped[pattern]

    def listing(self) -> list[str]:
        """Every regular file (symlinks are never edited through; submodules are not ours)."""
        if self._listing is None:
            out = git("ls-tree", "-r", "-z", self.base, cwd=self.mirror)
            self._listing = []
            for entry in out.split("\0"):
                meta, _, path = entry.partition("\t")
                if meta.startswith(("100644 blob", "100755 blob")):
                    self._listing.append(path)
        return self._listing

    def candidates(self, step: Step) -> list[str]:
        files = self.grep(step.grep) if step.grep else self.listing()
        return [path for path in files if matches(path, step.paths)]


def _fresh_worktree(mirror: Path, workdir: Path, base: str) -> None:
    if workdir.exists():  # left by a crashed run
        shutil.rmtree(workdir)
    git("worktree", "prune", cwd=mirror, check=False)
    for folder in (workdir.parent.parent, workdir.parent):  # work/ and work/<campaign>/
        paths.ensure_private_dir(folder)
    git("worktree", "add", "-q", "--detach", "--force", str(workdir), base, cwd=mirror)
    workdir.chmod(0o700)


def _change_test_push(
    job: RepoJob,
    forge: Forge,
    out: Outcome,
    mirrors: Path,
    mirror: Path,
    workdir: Path,
    base: str,
    branch: BranchTip,
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
            out.fatal = result.failed_state == AUTH_FAILED
            out.state = "error" if out.fatal else (result.failed_state or "error")
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
        _settle(job, forge, out, branch, "no-change", "; ".join(problems[:3]))
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
    killpoints.reached("committed")
    if branch.peek_unknown() and _push(job, workdir, head, expect=None, env=env):
        # first sight and the branch did not exist: one push instead of ls-remote + push
        branch.known(head)
        out.step("pushed", head[:12])
    remote_branch = branch.sha
    if remote_branch and not _has(mirror, remote_branch):
        fetch_mirror(repo, mirrors, None, branch=campaign.branch, branch_sha=remote_branch, env=env)
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
        if not _push(job, workdir, head, expect=remote_branch, env=env):
            raise GitError(
                ("push",), 1, f"{campaign.branch} moved on the forge while we worked; run again"
            )
        out.step("pushed", head[:12])
    out.head_sha = head
    killpoints.reached("pushed")  # between the push and the MR: the classic duplicate-MR crash

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
        reviewers=_reviewers(job, mirror, base, out.files),
    )
    out.mr = _upsert_mr(forge, repo, spec, head, out)
    killpoints.reached("mr")
    out.state = {"open": "mr-open", "merged": "merged", "closed": "closed"}[out.mr.state]


def _settle(
    job: RepoJob, forge: Forge, out: Outcome, branch: BranchTip, state: str, reason: str
) -> None:
    """The change makes no diff on this base.  If an MR was opened earlier, say what became of it:
    merged (that is why), or still open though no longer needed (close it, with a comment)."""
    out.state, out.reason = state, reason
    had_mr = branch.peek() is not None or (
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


def _reviewers(job: RepoJob, mirror: Path, base: str, files: list[str]) -> tuple[str, ...]:
    """The campaign's reviewers, plus the CODEOWNERS of the changed files when asked."""
    wanted = list(job.campaign.merge_request.reviewers)
    if job.campaign.merge_request.reviewers_from_codeowners:
        for location in codeowners.LOCATIONS:
            text = git("show", f"{base}:{location}", cwd=mirror, check=False)
            if text:
                wanted += codeowners.reviewers(text, files)
                break
    return tuple(dict.fromkeys(wanted))


def _push(
    job: RepoJob, workdir: Path, head: str, *, expect: str | None, env: dict[str, str]
) -> bool:
    """Compare-and-swap the campaign branch to ``head``; False if it was not at ``expect``."""
    branch = job.campaign.branch
    try:
        git(
            "push",
            "-q",
            "--no-verify",
            job.repo.clone_url,
            f"{head}:refs/heads/{branch}",
            f"--force-with-lease=refs/heads/{branch}:{expect or ''}",
            cwd=workdir,
            env=env,
            timeout=300,
        )
        return True
    except GitError as exc:
        if "stale info" in exc.stderr or "already exists" in exc.stderr:
            return False
        raise


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
