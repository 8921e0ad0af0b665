"""An in-process GitHub: the REST v3 subset fleetchange uses, one GraphQL mutation, and
git smart HTTP.

:class:`GitHubServer` answers like ``api.github.com`` (paths at the root; the GHES
prefix ``/api/v3`` is accepted too): GitHub's JSON shapes, ``Validation Failed``
bodies, ``Link``-header pagination (``per_page`` default 30, max 100, no totals)
and ``x-ratelimit-*`` headers on every response.  Repositories are real bare
repositories under ``root``, cloneable and pushable at ``{url}/{owner}/{repo}.git``;
head SHAs are read live and merges really move the base branch.

Deliberate differences from GitHub:

* every API request needs the token (``Authorization: Bearer <t>`` or ``token <t>``);
  no permission model, and every known user counts as a collaborator;
* pull requests only within one repository (a ``head`` of another owner is invalid);
* ``GET .../pulls?head=branch`` without the ``owner:`` prefix ignores the filter and
  lists every pull request -- exactly as GitHub does;
* merging fast-forwards when it can and otherwise writes a merge commit (GitHub's
  "merge" always writes one); ``rebase`` is approximated by a squash commit;
* mergeability is computed synchronously, but a freshly created pull request reports
  ``mergeable: null`` / ``mergeable_state: "unknown"`` like GitHub, and
  ``mergeability_delay = N`` keeps that up for N more reads after each push;
* branch protection is reduced to required check names (check runs or commit
  statuses) and a number of required approvals, set with :meth:`protect_branch`;
* GraphQL knows only ``enablePullRequestAutoMerge``/``disablePullRequestAutoMerge``
  and answers a fixed superset of fields whatever the selection set asks for;
* git over HTTP: for an installation-style token (``ghs_...``) the Basic user name
  must be ``x-access-token``; for other tokens any user name goes.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .faults import FaultInjector, FaultRule
from .githttp import GitHttpBackend, is_push
from .gitrepo import BareRepo, FileContent, GitError, MergeConflictError, MergeMethod
from .httpbase import (
    ApiError,
    ForgeServer,
    PageWindow,
    Request,
    Response,
    Router,
    format_links,
    page_url,
    parse_int,
)

T = TypeVar("T")

DEFAULT_TOKEN = "ghs_fleetchangeTestInstallationToken0001"
DOCS = "https://docs.github.com/rest"
PULLS_DOCS = "https://docs.github.com/rest/pulls/pulls"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID {id}."
)
PUSH_DENIED = "error: GH006: Protected branch update failed for %s."
JSON_TYPE = "application/json; charset=utf-8"
CHECK_OK = frozenset({"success", "neutral", "skipped"})
_GIT_PATH = re.compile(
    r"/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?"
    r"(?P<tail>/(?:info/refs|HEAD|git-upload-pack|git-receive-pack|objects/.+))"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, doc: str = DOCS, **extra: Any) -> ApiError:
    return ApiError(
        status, {"message": message, **extra, "documentation_url": doc, "status": str(status)}
    )


def _invalid(errors: list[dict[str, str]], doc: str = PULLS_DOCS) -> ApiError:
    return _error(422, "Validation Failed", doc, errors=errors)


def _not_found() -> ApiError:
    return _error(404, "Not Found")


@dataclass
class Account:
    id: int
    login: str
    type: str  # "User" or "Organization"


@dataclass
class Protection:
    required_checks: list[str] = field(default_factory=list)
    required_approvals: int = 0


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str  # queued | in_progress | completed
    conclusion: str | None
    started_at: str = field(default_factory=_now)
    completed_at: str | None = None


@dataclass
class CommitStatus:
    id: int
    sha: str
    context: str
    state: str  # error | failure | pending | success
    description: str | None = None
    target_url: str | None = None
    created_at: str = field(default_factory=_now)


@dataclass
class Repo:
    id: int
    owner: Account
    name: str
    repo: BareRepo
    default_branch: str
    private: bool = True
    archived: bool = False
    topics: list[str] = field(default_factory=list)
    description: str = ""
    fork_of: Repo | None = None
    allow_auto_merge: bool = True
    delete_branch_on_merge: bool = False
    protection: dict[str, Protection] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    check_runs: list[CheckRun] = field(default_factory=list)
    statuses: list[CommitStatus] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def node_id(self) -> str:
        return f"R_kgDOJ{self.id:07d}"


@dataclass
class Review:
    id: int
    user: Account
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED
    commit_id: str
    body: str = ""
    submitted_at: str = field(default_factory=_now)


@dataclass
class Comment:
    id: int
    user: Account
    body: str
    created_at: str = field(default_factory=_now)


@dataclass
class Pull:
    id: int
    number: int
    repo: Repo
    head_ref: str
    base_ref: str
    title: str
    user: Account
    head_sha: str
    body: str = ""
    draft: bool = False
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    closed_at: str | None = None
    merged_by: Account | None = None
    merge_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[Account] = field(default_factory=list)
    requested_reviewers: list[Account] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    auto_merge: dict[str, Any] | None = None
    pending_reads: int = 0
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)

    @property
    def node_id(self) -> str:
        return f"PR_kwDOJ{self.id:08d}"


RepoRef = Repo | str


class GitHubServer(ForgeServer):
    """GitHub REST v3 (+ a GraphQL mutation) + git smart HTTP on ``http://127.0.0.1:PORT``.

    Build state with :meth:`add_repo`, :meth:`commit`, :meth:`protect_branch`; drive
    pull requests with :meth:`set_check_run`, :meth:`set_status`, :meth:`approve`.
    ``rate_limit``/``rate_remaining``/``rate_reset`` feed the ``x-ratelimit-*`` headers;
    at ``rate_remaining == 0`` API requests get GitHub's primary rate-limit 403.
    """

    server_header = "GitHub.com"

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        login: str = "fleetbot",
        faults: FaultInjector | None = None,
        mergeability_delay: int = 0,
        rate_limit: int = 5000,
    ) -> None:
        super().__init__(root, token=token, faults=faults)
        self.mergeability_delay = mergeability_delay
        starts = {"account": 1, "repo": 100000, "pull": 2000000, "label": 3000, "comment": 4000}
        starts |= {"review": 5000, "check": 6000, "status": 7000}
        self._counters = {kind: itertools.count(n) for kind, n in starts.items()}
        self.accounts: dict[str, Account] = {}
        self.repos: dict[str, Repo] = {}
        self.pulls: list[Pull] = []
        self.user = self.add_user(login)
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.rate_reset = int(time.time()) + 3600
        self.git = GitHttpBackend(
            self.root, self.git_env, realm="GitHub", check=self.check_git_credentials
        )
        self.router = Router()
        self._add_routes()

    @property
    def api_url(self) -> str:
        return self.url

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def check_git_credentials(self, username: str, password: str) -> bool:
        if password != self.token:
            return False
        return username == "x-access-token" if self.token.startswith("ghs_") else bool(username)

    def _next(self, kind: str) -> int:
        return next(self._counters[kind])

    # == test helpers ==================================================================
    def add_user(self, login: str) -> Account:
        return self._account(login, "User")

    def add_org(self, login: str) -> Account:
        return self._account(login, "Organization")

    def _account(self, login: str, kind: str) -> Account:
        with self.lock:
            if login.lower() not in self.accounts:
                self.accounts[login.lower()] = Account(self._next("account"), login, kind)
            return self.accounts[login.lower()]

    def add_repo(
        self,
        full_name: str,
        *,
        files: Mapping[str, FileContent] | None = None,
        default_branch: str = "main",
        archived: bool = False,
        private: bool = True,
        topics: Sequence[str] = (),
        description: str = "",
        fork_of: RepoRef | None = None,
        allow_auto_merge: bool = True,
        delete_branch_on_merge: bool = False,
    ) -> Repo:
        """A repository ``owner/name`` (owner created as an org unless already known).

        ``files=None`` commits a README; ``files={}`` leaves it empty (``size: 0``).
        ``fork_of`` clones that repository's history (``fork: true``).
        """
        owner_login, _, name = full_name.partition("/")
        if not owner_login or not name or "/" in name:
            raise ValueError("repositories are named 'owner/name'")
        with self.lock:
            if full_name.lower() in self.repos:
                raise ValueError(f"repository {full_name} exists")
            owner = self.accounts.get(owner_login.lower()) or self.add_org(owner_login)
            disk = self.root / f"{owner.login}/{name}.git"
            parent = self.repo(fork_of) if fork_of is not None else None
            if parent is not None:
                bare = BareRepo.clone_from(parent.repo, disk)
            else:
                bare = BareRepo.init(disk, self.git_env, default_branch=default_branch)
                content = {"README.md": f"# {name}\n"} if files is None else files
                if content:
                    bare.commit(default_branch, content, "Initial commit")
            repo = Repo(
                self._next("repo"),
                owner,
                name,
                bare,
                default_branch,
                private=private,
                archived=archived,
                topics=list(topics),
                description=description,
                fork_of=parent,
                allow_auto_merge=allow_auto_merge,
                delete_branch_on_merge=delete_branch_on_merge,
            )
            self.repos[repo.full_name.lower()] = repo
            return repo

    def repo(self, ref: RepoRef) -> Repo:
        with self.lock:
            if isinstance(ref, Repo):
                return ref
            found = self.repos.get(ref.lower())
            if found is None:
                raise KeyError(f"no repository {ref!r}")
            return found

    def commit(
        self,
        repo: RepoRef,
        branch: str,
        files: Mapping[str, FileContent],
        message: str = "Update files",
        *,
        start_point: str | None = None,
    ) -> str:
        """Commit on ``branch`` (created from ``start_point``, default the default
        branch, when missing; a root commit in an empty repository), as if someone
        pushed; returns the new SHA."""
        r = self.repo(repo)
        if start_point is None and r.repo.branch_sha(r.default_branch):
            start_point = r.default_branch
        return r.repo.commit(branch, files, message, start_point=start_point)

    def branch_sha(self, repo: RepoRef, branch: str) -> str | None:
        return self.repo(repo).repo.branch_sha(branch)

    def protect_branch(
        self,
        repo: RepoRef,
        branch: str,
        *,
        required_checks: Sequence[str] = (),
        required_approvals: int = 0,
        block_push: bool = True,
    ) -> None:
        """Require checks/approvals before merging into ``branch``; with ``block_push``
        direct pushes to it are rejected (GH006)."""
        with self.lock:
            r = self.repo(repo)
            r.protection[branch] = Protection(list(required_checks), required_approvals)
            blocked = [b for b in r.protection if b != branch or block_push]
            r.repo.set_protected(blocked, PUSH_DENIED)

    def pull(self, repo: RepoRef, number: int) -> Pull:
        """The live Pull object (mutate only under ``server.lock``)."""
        with self.lock:
            r = self.repo(repo)
            for pr in self.pulls:
                if pr.repo is r and pr.number == number:
                    return pr
            raise KeyError(f"no pull request #{number} in {r.full_name}")

    def pull_json(self, repo: RepoRef, number: int) -> dict[str, Any]:
        """What ``GET /repos/:o/:r/pulls/:n`` would answer (no read consumed)."""
        with self.lock:
            pr = self.pull(repo, number)
            branches = pr.repo.repo.branches()
            self._sync(pr, branches)
            return self._pull_json(pr, branches, full=True, consume=False)

    def set_check_run(
        self,
        repo: RepoRef,
        ref: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> dict[str, Any]:
        """Add a check run on ``ref`` (branch or SHA); auto-merges proceed if now allowed."""
        with self.lock:
            r = self.repo(repo)
            sha = self._resolve(r, ref)
            run = CheckRun(
                self._next("check"),
                name,
                sha,
                status,
                conclusion if status == "completed" else None,
                completed_at=_now() if status == "completed" else None,
            )
            r.check_runs.append(run)
            self._auto_merge_all(r)
            return self._check_run_json(r, run)

    def set_status(
        self, repo: RepoRef, ref: str, context: str, state: str, *, description: str = ""
    ) -> dict[str, Any]:
        """Add a commit status (``success``/``pending``/``failure``/``error``) on ``ref``."""
        with self.lock:
            r = self.repo(repo)
            status = CommitStatus(
                self._next("status"), self._resolve(r, ref), context, state, description or None
            )
            r.statuses.append(status)
            self._auto_merge_all(r)
            return self._status_json(status)

    def approve(self, repo: RepoRef, number: int, user: str = "reviewer") -> dict[str, Any]:
        """An APPROVED review by ``user`` (created if unknown) on the current head."""
        with self.lock:
            pr = self.pull(repo, number)
            review = Review(self._next("review"), self.add_user(user), "APPROVED", pr.head_sha)
            pr.reviews.append(review)
            self._try_auto_merge(pr)
            return self._review_json(pr, review)

    def set_rate_limit(
        self, *, remaining: int | None = None, limit: int | None = None, reset_in: int = 3600
    ) -> None:
        """Set the primary rate-limit budget (``remaining=0`` makes API requests fail 403)."""
        with self.lock:
            if limit is not None:
                self.rate_limit = limit
            self.rate_remaining = self.rate_limit if remaining is None else remaining
            self.rate_reset = int(time.time()) + reset_in

    # == internals: lookups and state ==================================================
    def _repo(self, m: Mapping[str, str]) -> Repo:
        repo = self.repos.get(f"{m['owner']}/{m['repo']}".lower())
        if repo is None:
            raise _not_found()
        return repo

    def _pull(self, m: Mapping[str, str]) -> Pull:
        r = self._repo(m)
        for pr in self.pulls:
            if pr.repo is r and pr.number == int(m["number"]):
                return pr
        raise _not_found()

    def _resolve(self, r: Repo, ref: str) -> str:
        sha = r.repo.rev_parse(ref)
        if sha is None:
            raise _error(422, f"No commit found for SHA: {ref}")
        return sha

    @staticmethod
    def _body(req: Request) -> Any:
        try:
            return req.json()
        except (ValueError, UnicodeDecodeError):
            raise _error(400, "Problems parsing JSON") from None

    def _object_body(self, req: Request) -> dict[str, Any]:
        data = self._body(req)
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise _error(400, "Problems parsing JSON")
        return data

    def _sync(self, pr: Pull, branches: Mapping[str, str]) -> None:
        """Follow pushes to the head branch; close the PR when head or base is deleted."""
        if pr.state != "open":
            return
        sha = branches.get(pr.head_ref)
        if sha is None or pr.base_ref not in branches:
            pr.state, pr.closed_at, pr.updated_at, pr.auto_merge = "closed", _now(), _now(), None
            return
        if sha != pr.head_sha:
            pr.head_sha, pr.updated_at = sha, _now()
            pr.pending_reads = self.mergeability_delay

    def _check_states(self, r: Repo, sha: str) -> dict[str, str]:
        """Latest outcome per check name / status context on ``sha``: success|pending|failure."""
        states: dict[str, str] = {}
        for status in sorted((s for s in r.statuses if s.sha == sha), key=lambda s: s.id):
            states[status.context] = "failure" if status.state == "error" else status.state
        for run in sorted((c for c in r.check_runs if c.head_sha == sha), key=lambda c: c.id):
            if run.status != "completed":
                states[run.name] = "pending"
            else:
                states[run.name] = "success" if run.conclusion in CHECK_OK else "failure"
        return states

    def _approvals(self, pr: Pull) -> int:
        latest: dict[int, str] = {}
        for review in pr.reviews:
            if review.user is not pr.user and review.state != "COMMENTED":
                latest[review.user.id] = review.state
        return sum(1 for state in latest.values() if state == "APPROVED")

    def _blockers(self, pr: Pull) -> list[str]:
        """Why branch protection forbids merging ``pr`` (empty when it allows it)."""
        rule = pr.repo.protection.get(pr.base_ref)
        if rule is None:
            return []
        states = self._check_states(pr.repo, pr.head_sha)
        words = {None: "expected", "pending": "in progress", "failure": "failing"}
        out = [
            f'Required status check "{name}" is {words[states.get(name)]}.'
            for name in rule.required_checks
            if states.get(name) != "success"
        ]
        need = rule.required_approvals
        if self._approvals(pr) < need:
            noun = "approving review is" if need == 1 else "approving reviews are"
            out.append(f"At least {need} {noun} required by reviewers with write access.")
        return out

    def _mergeability(
        self, pr: Pull, branches: Mapping[str, str], *, consume: bool
    ) -> tuple[bool | None, str]:
        """``(mergeable, mergeable_state)`` as GitHub reports them."""
        if pr.state != "open":
            return None, "unknown"
        if pr.pending_reads > 0 and consume:
            pr.pending_reads -= 1
            return None, "unknown"
        head, base = branches.get(pr.head_ref), branches.get(pr.base_ref)
        if head is None or base is None or pr.repo.repo.has_conflicts(base, head):
            return False, "dirty"
        if pr.draft:
            return True, "draft"
        if self._blockers(pr):
            return True, "blocked"
        if "failure" in self._check_states(pr.repo, pr.head_sha).values():
            return True, "unstable"
        return True, "clean"

    def _perform_merge(
        self,
        pr: Pull,
        method: MergeMethod,
        user: Account,
        title: str | None = None,
        message: str | None = None,
    ) -> str:
        if method == "merge":
            head = f"Merge pull request #{pr.number} from {pr.repo.owner.login}/{pr.head_ref}"
            text = f"{title or head}\n\n{pr.title if message is None else message}"
        else:
            text = f"{title or f'{pr.title} (#{pr.number})'}\n\n{message or ''}".strip()
        try:
            new, _ = pr.repo.repo.merge(pr.base_ref, pr.head_sha, text + "\n", method)
        except MergeConflictError:
            raise _error(405, "Pull Request is not mergeable", f"{PULLS_DOCS}#merge") from None
        except GitError:
            raise _error(409, "Base branch was modified. Review and try the merge again.") from None
        now = _now()
        pr.state, pr.merged, pr.merged_at, pr.closed_at, pr.updated_at = (
            "closed",
            True,
            now,
            now,
            now,
        )
        pr.merged_by, pr.merge_commit_sha, pr.auto_merge = user, new, None
        if pr.repo.delete_branch_on_merge and pr.head_ref not in pr.repo.protection:
            pr.repo.repo.delete_branch(pr.head_ref)
        return new

    def _try_auto_merge(self, pr: Pull) -> None:
        if pr.auto_merge is None or pr.state != "open":
            return
        branches = pr.repo.repo.branches()
        self._sync(pr, branches)
        if pr.state == "open" and self._mergeability(pr, branches, consume=False)[1] in (
            "clean",
            "unstable",
        ):
            enabled_by = self.accounts[pr.auto_merge["enabled_by"]["login"].lower()]
            method: MergeMethod = pr.auto_merge["merge_method"]
            title, message = pr.auto_merge.get("commit_title"), pr.auto_merge.get("commit_message")
            try:
                self._perform_merge(pr, method, enabled_by, title, message)
            except ApiError:  # the base moved under us: GitHub disables auto-merge
                pr.auto_merge = None

    def _auto_merge_all(self, r: Repo) -> None:
        for pr in self.pulls:
            if pr.repo is r and pr.auto_merge is not None:
                self._try_auto_merge(pr)

    # == internals: HTTP ===============================================================
    def route_git(self, req: Request) -> tuple[str, str] | None:
        if req.path.startswith(("/repos/", "/api/")):
            return None
        match = _GIT_PATH.fullmatch(req.path)
        return (f"{match['owner']}/{match['name']}", match["tail"]) if match else None

    def handle_git(self, req: Request, repo: str, tail: str) -> Response:
        auth = self.git.authenticate(req)
        if isinstance(auth, Response):
            return auth
        with self.lock:
            r = self.repos.get(repo.lower())
            if r is None:
                return Response.text(404, "Repository not found.\n")
            if is_push(req) and r.archived:
                return Response.text(403, "This repository was archived so it is read-only.\n")
            path_info = f"/{r.owner.login}/{r.name}.git{tail}"
        return self.git.handle(req, path_info, user=auth)

    def handle_api(self, req: Request) -> Response:
        path = req.raw_path.removeprefix("/api/v3")
        if path == "/api/graphql":
            path = "/graphql"
        auth = req.header("Authorization") or ""
        scheme, _, credential = auth.partition(" ")
        if not auth:
            raise _error(401, "Requires authentication")
        if scheme.lower() not in ("bearer", "token") or credential.strip() != self.token:
            raise _error(401, "Bad credentials")
        found = self.router.resolve(req.method, path)
        if isinstance(found, int):
            raise _not_found()
        handler, params = found
        with self.lock:
            if time.time() >= self.rate_reset:
                self.set_rate_limit()
            if self.rate_remaining <= 0:
                raise ApiError(
                    403,
                    {
                        "message": f"API rate limit exceeded for user ID {self.user.id}.",
                        "documentation_url": RATE_DOCS,
                    },
                )
            self.rate_remaining -= 1
            return handler(req, params)

    def render_error(self, exc: ApiError) -> Response:
        return Response.payload(exc.status, exc.payload, exc.headers, content_type=JSON_TYPE)

    def render_fault(self, rule: FaultRule, req: Request) -> Response:
        reset = int(time.time()) + (rule.retry_after or 0)
        headers: dict[str, str] = {}
        if rule.kind == "rate_limit":
            status = rule.status or 403
            body: Any = {
                "message": f"API rate limit exceeded for user ID {self.user.id}. If you reach "
                "out to GitHub Support for help, please include the request ID "
                f"{self._request_id()}.",
                "documentation_url": RATE_DOCS,
            }
            headers = {"x-ratelimit-remaining": "0", "x-ratelimit-used": str(self.rate_limit)}
            headers["x-ratelimit-reset"] = str(reset)
        elif rule.kind == "secondary_rate_limit":
            status = rule.status or 403
            body = {
                "message": SECONDARY_MESSAGE.format(id=self._request_id()),
                "documentation_url": f"{RATE_DOCS}#about-secondary-rate-limits",
            }
        else:
            status = rule.status or 500
            if status in (502, 503, 504):
                body = f"<html><body><h1>{status}</h1>Unicorn! This page is taking too long.</html>"
            else:
                body = {"message": "Server Error" if status >= 500 else f"{status} fault"}
        if rule.retry_after is not None and rule.kind != "status":
            headers["retry-after"] = str(rule.retry_after)
        headers.update(rule.headers)
        resp = Response.payload(status, rule.body if rule.body is not None else body, headers)
        if isinstance(body, str) and rule.body is None:
            resp.set_header("Content-Type", "text/html; charset=utf-8")
        return resp

    @staticmethod
    def _request_id() -> str:
        return uuid.uuid4().hex[:20].upper()

    def decorate(self, req: Request, response: Response, *, git: bool) -> None:
        if git:
            return
        with self.lock:
            limit, remaining, reset = self.rate_limit, self.rate_remaining, self.rate_reset
        resource = "graphql" if req.raw_path.endswith("/graphql") else "core"
        response.default_header("x-ratelimit-limit", str(limit))
        response.default_header("x-ratelimit-remaining", str(remaining))
        response.default_header("x-ratelimit-used", str(limit - remaining))
        response.default_header("x-ratelimit-reset", str(reset))
        response.default_header("x-ratelimit-resource", resource)
        response.default_header("x-github-media-type", "github.v3; format=json")
        response.default_header("x-github-api-version-selected", "2022-11-28")
        response.default_header("x-github-request-id", self._request_id())

    def _page(self, req: Request, items: Sequence[T]) -> tuple[list[T], dict[str, str]]:
        """One page of ``items`` and its ``Link`` header (GitHub sends no totals)."""
        per_page = min(max(parse_int(req.arg("per_page")) or 30, 1), 100)
        window = PageWindow(max(parse_int(req.arg("page")) or 1, 1), per_page, len(items))
        links = []
        if window.prev_page:
            links.append(("prev", page_url(self.url, req, window.prev_page, per_page)))
        if window.next_page:
            links.append(("next", page_url(self.url, req, window.next_page, per_page)))
            links.append(("last", page_url(self.url, req, window.total_pages, per_page)))
        if window.prev_page:
            links.append(("first", page_url(self.url, req, 1, per_page)))
        return window.slice(items), ({"Link": format_links(links)} if links else {})

    def _paginate(self, req: Request, items: Sequence[T], render: Callable[[T], Any]) -> Response:
        page, headers = self._page(req, items)
        return self._json(200, [render(item) for item in page], headers)

    @staticmethod
    def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        return Response.json(status, payload, headers, content_type=JSON_TYPE)

    def _add_routes(self) -> None:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        pull = repo + r"/pulls/(?P<number>\d+)"
        issue = repo + r"/issues/(?P<number>\d+)"
        add = self.router.add
        add("GET", r"/user", self._get_user)
        add("GET", r"/rate_limit", self._get_rate_limit)
        add("GET", r"/user/repos", self._list_user_repos)
        add("GET", r"/orgs/(?P<owner>[^/]+)/repos", self._list_owner_repos)
        add("GET", r"/users/(?P<owner>[^/]+)/repos", self._list_owner_repos)
        add("GET", repo, self._get_repo)
        add("GET", repo + r"/branches/(?P<branch>.+)", self._get_branch)
        add("GET", repo + r"/git/ref/heads/(?P<branch>.+)", self._get_ref)
        add("DELETE", repo + r"/git/refs/heads/(?P<branch>.+)", self._delete_ref)
        add("GET", repo + r"/pulls", self._list_pulls)
        add("POST", repo + r"/pulls", self._create_pull)
        add("GET", pull, self._get_pull)
        add("PATCH", pull, self._update_pull)
        add("GET", pull + r"/merge", self._get_merged)
        add("PUT", pull + r"/merge", self._merge_pull)
        add("GET", pull + r"/reviews", self._list_reviews)
        add("POST", pull + r"/reviews", self._create_review)
        add("POST", pull + r"/requested_reviewers", self._request_reviewers)
        add("GET", issue, self._get_issue)
        add("POST", issue + r"/labels", self._add_labels)
        add("PUT", issue + r"/labels", self._add_labels)
        add("DELETE", issue + r"/labels/(?P<name>[^/]+)", self._remove_label)
        add("POST", issue + r"/assignees", self._add_assignees)
        add("GET", issue + r"/comments", self._list_comments)
        add("POST", issue + r"/comments", self._create_comment)
        add("GET", repo + r"/commits/(?P<ref>.+)/check-runs", self._list_check_runs)
        add("GET", repo + r"/commits/(?P<ref>.+)/status", self._combined_status)
        add("POST", repo + r"/statuses/(?P<sha>[0-9a-f]{40})", self._create_status)
        add("POST", r"/graphql", self._graphql)

    # == JSON shapes ===================================================================
    def _account_json(self, a: Account | None) -> dict[str, Any] | None:
        if a is None:
            return None
        return {
            "login": a.login,
            "id": a.id,
            "node_id": f"{'U' if a.type == 'User' else 'O'}_kgDO{a.id:06d}",
            "avatar_url": f"{self.url}/avatars/{a.login}",
            "url": f"{self.url}/users/{a.login}",
            "html_url": f"{self.url}/{a.login}",
            "type": a.type,
            "site_admin": False,
        }

    def _repo_json(self, r: Repo, *, full: bool = False) -> dict[str, Any]:
        objects = r.repo.path / "objects"
        size = sum(f.stat().st_size for f in objects.rglob("*") if f.is_file()) // 1024
        api = f"{self.url}/repos/{r.full_name}"
        data: dict[str, Any] = {
            "id": r.id,
            "node_id": r.node_id,
            "name": r.name,
            "full_name": r.full_name,
            "private": r.private,
            "owner": self._account_json(r.owner),
            "html_url": f"{self.url}/{r.full_name}",
            "description": r.description or None,
            "fork": r.fork_of is not None,
            "url": api,
            "pulls_url": api + "/pulls{/number}",
            "git_url": f"git://127.0.0.1/{r.full_name}.git",
            "ssh_url": f"git@127.0.0.1:{r.full_name}.git",
            "clone_url": f"{self.url}/{r.full_name}.git",
            "created_at": r.created_at,
            "updated_at": r.created_at,
            "pushed_at": r.created_at,
            "size": max(1, size) if r.repo.has_branches() else 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "forks_count": sum(1 for o in self.repos.values() if o.fork_of is r),
            "archived": r.archived,
            "disabled": False,
            "open_issues_count": sum(1 for p in self.pulls if p.repo is r and p.state == "open"),
            "topics": list(r.topics),
            "visibility": "private" if r.private else "public",
            "default_branch": r.default_branch,
            "permissions": {
                "admin": True,
                "maintain": True,
                "push": True,
                "triage": True,
                "pull": True,
            },
        }
        if full:
            data.update(
                allow_merge_commit=True,
                allow_squash_merge=True,
                allow_rebase_merge=True,
                allow_auto_merge=r.allow_auto_merge,
                delete_branch_on_merge=r.delete_branch_on_merge,
                network_count=0,
                subscribers_count=0,
            )
            if r.fork_of is not None:
                data["parent"] = data["source"] = self._repo_json(r.fork_of)
        return data

    def _label_json(self, r: Repo, name: str) -> dict[str, Any]:
        if name not in r.labels:
            r.labels[name] = self._next("label")
        return {
            "id": r.labels[name],
            "node_id": f"LA_kwDO{r.labels[name]:08d}",
            "url": f"{self.url}/repos/{r.full_name}/labels/{name}",
            "name": name,
            "color": "ededed",
            "default": False,
            "description": None,
        }

    def _pull_json(
        self,
        pr: Pull,
        branches: Mapping[str, str],
        *,
        full: bool,
        consume: bool = True,
        repo_json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        r = pr.repo
        repo_json = repo_json or self._repo_json(r)
        html = f"{self.url}/{r.full_name}/pull/{pr.number}"
        api = f"{self.url}/repos/{r.full_name}"
        owner = self._account_json(r.owner)
        data: dict[str, Any] = {
            "url": f"{api}/pulls/{pr.number}",
            "id": pr.id,
            "node_id": pr.node_id,
            "html_url": html,
            "diff_url": html + ".diff",
            "patch_url": html + ".patch",
            "issue_url": f"{api}/issues/{pr.number}",
            "number": pr.number,
            "state": pr.state,
            "locked": False,
            "title": pr.title,
            "user": self._account_json(pr.user),
            "body": pr.body or None,
            "labels": [self._label_json(r, name) for name in sorted(pr.labels)],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pr.created_at,
            "updated_at": pr.updated_at,
            "closed_at": pr.closed_at,
            "merged_at": pr.merged_at,
            "merge_commit_sha": pr.merge_commit_sha,
            "assignee": self._account_json(pr.assignees[0]) if pr.assignees else None,
            "assignees": [self._account_json(a) for a in pr.assignees],
            "requested_reviewers": [self._account_json(a) for a in pr.requested_reviewers],
            "requested_teams": [{"name": t, "slug": t} for t in pr.requested_teams],
            "draft": pr.draft,
            "head": {
                "label": f"{r.owner.login}:{pr.head_ref}",
                "ref": pr.head_ref,
                "sha": pr.head_sha,
                "user": owner,
                "repo": repo_json,
            },
            "base": {
                "label": f"{r.owner.login}:{pr.base_ref}",
                "ref": pr.base_ref,
                "sha": branches.get(pr.base_ref),
                "user": owner,
                "repo": repo_json,
            },
            "author_association": "MEMBER",
            "auto_merge": pr.auto_merge,
        }
        if full:  # the list endpoint leaves these out, like GitHub
            mergeable, state = self._mergeability(pr, branches, consume=consume)
            base_sha = branches.get(pr.base_ref)
            changed = r.repo.changed_files(base_sha, pr.head_sha) if base_sha else []
            data.update(
                {
                    "merged": pr.merged,
                    "mergeable": mergeable,
                    "rebaseable": mergeable,
                    "mergeable_state": state,
                    "merged_by": self._account_json(pr.merged_by),
                    "comments": len(pr.comments),
                    "review_comments": 0,
                    "maintainer_can_modify": False,
                    "commits": 1,
                    "additions": 0,
                    "deletions": 0,
                    "changed_files": len(changed),
                }
            )
        return data

    def _issue_json(self, pr: Pull) -> dict[str, Any]:
        api = f"{self.url}/repos/{pr.repo.full_name}"
        html = f"{self.url}/{pr.repo.full_name}/pull/{pr.number}"
        return {
            "id": pr.id + 1,
            "node_id": f"I_kwDO{pr.id:08d}",
            "url": f"{api}/issues/{pr.number}",
            "repository_url": api,
            "html_url": html,
            "number": pr.number,
            "state": pr.state,
            "state_reason": None,
            "title": pr.title,
            "body": pr.body or None,
            "user": self._account_json(pr.user),
            "labels": [self._label_json(pr.repo, name) for name in sorted(pr.labels)],
            "assignee": self._account_json(pr.assignees[0]) if pr.assignees else None,
            "assignees": [self._account_json(a) for a in pr.assignees],
            "locked": False,
            "comments": len(pr.comments),
            "created_at": pr.created_at,
            "updated_at": pr.updated_at,
            "closed_at": pr.closed_at,
            "author_association": "MEMBER",
            "pull_request": {
                "url": f"{api}/pulls/{pr.number}",
                "html_url": html,
                "diff_url": html + ".diff",
                "patch_url": html + ".patch",
                "merged_at": pr.merged_at,
            },
        }

    def _comment_json(self, pr: Pull, c: Comment) -> dict[str, Any]:
        api = f"{self.url}/repos/{pr.repo.full_name}"
        return {
            "id": c.id,
            "node_id": f"IC_kwDO{c.id:08d}",
            "url": f"{api}/issues/comments/{c.id}",
            "html_url": f"{self.url}/{pr.repo.full_name}/pull/{pr.number}#issuecomment-{c.id}",
            "issue_url": f"{api}/issues/{pr.number}",
            "body": c.body,
            "user": self._account_json(c.user),
            "created_at": c.created_at,
            "updated_at": c.created_at,
            "author_association": "MEMBER",
        }

    def _review_json(self, pr: Pull, review: Review) -> dict[str, Any]:
        html = f"{self.url}/{pr.repo.full_name}/pull/{pr.number}"
        return {
            "id": review.id,
            "node_id": f"PRR_kwDO{review.id:08d}",
            "user": self._account_json(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": f"{html}#pullrequestreview-{review.id}",
            "pull_request_url": f"{self.url}/repos/{pr.repo.full_name}/pulls/{pr.number}",
            "author_association": "MEMBER",
            "submitted_at": review.submitted_at,
            "commit_id": review.commit_id,
        }

    def _check_run_json(self, r: Repo, run: CheckRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "node_id": f"CR_kwDO{run.id:08d}",
            "head_sha": run.head_sha,
            "external_id": "",
            "url": f"{self.url}/repos/{r.full_name}/check-runs/{run.id}",
            "html_url": f"{self.url}/{r.full_name}/runs/{run.id}",
            "details_url": f"{self.url}/{r.full_name}/runs/{run.id}",
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0},
            "name": run.name,
            "check_suite": {"id": run.id + 100000},
            "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
            "pull_requests": [],
        }

    def _status_json(self, s: CommitStatus) -> dict[str, Any]:
        return {
            "id": s.id,
            "node_id": f"SC_kwDO{s.id:08d}",
            "state": s.state,
            "description": s.description,
            "target_url": s.target_url,
            "context": s.context,
            "avatar_url": None,
            "created_at": s.created_at,
            "updated_at": s.created_at,
        }

    # == handlers: accounts and repositories ===========================================
    def _get_user(self, req: Request, m: dict[str, str]) -> Response:
        data = self._account_json(self.user) or {}
        data.update(name="Fleet Bot", email=None, created_at="2023-11-14T22:13:20Z")
        return self._json(200, data)

    def _get_rate_limit(self, req: Request, m: dict[str, str]) -> Response:
        self.rate_remaining += 1  # GitHub does not count this endpoint
        core = {
            "limit": self.rate_limit,
            "remaining": self.rate_remaining,
            "reset": self.rate_reset,
            "used": self.rate_limit - self.rate_remaining,
            "resource": "core",
        }
        return self._json(200, {"resources": {"core": core}, "rate": core})

    def _sorted_repos(self, req: Request, repos: list[Repo], default_sort: str) -> list[Repo]:
        sort = req.arg("sort", default_sort)
        direction = req.arg("direction", "asc" if sort == "full_name" else "desc")
        if sort == "full_name":
            repos.sort(key=lambda r: r.full_name.lower(), reverse=direction == "desc")
        else:  # created / updated / pushed: creation order stands in for all three
            repos.sort(key=lambda r: r.id, reverse=direction == "desc")
        return repos

    def _list_owner_repos(self, req: Request, m: dict[str, str]) -> Response:
        owner = self.accounts.get(m["owner"].lower())
        is_org = req.raw_path.removeprefix("/api/v3").startswith("/orgs/")
        if owner is None or (is_org and owner.type != "Organization"):
            raise _not_found()
        repos = [r for r in self.repos.values() if r.owner is owner]
        kind = req.arg("type", "all")
        if kind == "public":
            repos = [r for r in repos if not r.private]
        elif kind == "private":
            repos = [r for r in repos if r.private]
        elif kind == "forks":
            repos = [r for r in repos if r.fork_of is not None]
        elif kind == "sources":
            repos = [r for r in repos if r.fork_of is None]
        repos = self._sorted_repos(req, repos, "created" if is_org else "full_name")
        return self._paginate(req, repos, self._repo_json)

    def _list_user_repos(self, req: Request, m: dict[str, str]) -> Response:
        repos = self._sorted_repos(req, list(self.repos.values()), "full_name")
        return self._paginate(req, repos, self._repo_json)

    def _get_repo(self, req: Request, m: dict[str, str]) -> Response:
        return self._json(200, self._repo_json(self._repo(m), full=True))

    def _get_branch(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        sha = r.repo.branch_sha(m["branch"])
        if sha is None:
            raise _error(404, "Branch not found")
        info = r.repo.commit_info(sha)
        api = f"{self.url}/repos/{r.full_name}"
        commit = {
            "sha": sha,
            "url": f"{api}/commits/{sha}",
            "commit": {
                "message": info["message"],
                "author": {
                    "name": info["author_name"],
                    "email": info["author_email"],
                    "date": info["authored_date"],
                },
            },
            "parents": [{"sha": p} for p in info["parent_ids"]],
        }
        protected = m["branch"] in r.protection
        return self._json(
            200,
            {
                "name": m["branch"],
                "commit": commit,
                "protected": protected,
                "protection_url": f"{api}/branches/{m['branch']}/protection",
                "_links": {
                    "self": f"{api}/branches/{m['branch']}",
                    "html": f"{self.url}/{r.full_name}/tree/{m['branch']}",
                },
            },
        )

    def _get_ref(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        sha = r.repo.branch_sha(m["branch"])
        if sha is None:
            raise _not_found()
        api = f"{self.url}/repos/{r.full_name}/git"
        return self._json(
            200,
            {
                "ref": f"refs/heads/{m['branch']}",
                "node_id": f"REF_kwDO{r.id:08d}",
                "url": f"{api}/refs/heads/{m['branch']}",
                "object": {"sha": sha, "type": "commit", "url": f"{api}/commits/{sha}"},
            },
        )

    def _delete_ref(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        if r.archived:
            raise _error(403, "Repository was archived so is read-only.")
        branch = m["branch"]
        if r.repo.branch_sha(branch) is None:
            raise _error(422, "Reference does not exist", f"{DOCS}/git/refs#delete-a-reference")
        if branch in r.protection:
            raise _error(422, "Cannot delete this protected branch")
        r.repo.delete_branch(branch)
        branches = r.repo.branches()
        for pr in self.pulls:  # GitHub closes pull requests whose head branch is gone
            if pr.repo is r:
                self._sync(pr, branches)
        return Response.empty(204)

    # == handlers: pull requests =======================================================
    def _list_pulls(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        branches = r.repo.branches()
        pulls = [pr for pr in self.pulls if pr.repo is r]
        for pr in pulls:
            self._sync(pr, branches)
        state = req.arg("state", "open")
        if state not in ("open", "closed", "all"):
            raise _invalid([{"resource": "PullRequest", "field": "state", "code": "invalid"}])
        if state != "all":
            pulls = [pr for pr in pulls if pr.state == state]
        head = req.arg("head") or ""
        if ":" in head:  # without "owner:" GitHub silently ignores the filter
            owner, _, ref = head.partition(":")
            same_owner = owner.lower() == r.owner.login.lower()
            pulls = [pr for pr in pulls if same_owner and pr.head_ref == ref]
        if req.arg("base"):
            pulls = [pr for pr in pulls if pr.base_ref == req.arg("base")]
        sort = req.arg("sort", "created")
        direction = req.arg("direction", "desc" if sort == "created" else "asc")
        key: Callable[[Pull], Any] = (
            (lambda pr: (pr.updated_at, pr.id)) if sort == "updated" else (lambda pr: pr.id)
        )
        pulls.sort(key=key, reverse=direction == "desc")
        repo_json = self._repo_json(r)
        return self._paginate(
            req, pulls, lambda pr: self._pull_json(pr, branches, full=False, repo_json=repo_json)
        )

    def _create_pull(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        data = self._object_body(req)
        missing = [
            {"resource": "PullRequest", "code": "missing_field", "field": name}
            for name in ("head", "base", "title")
            if not data.get(name)
        ]
        if missing:
            raise _invalid(missing, f"{PULLS_DOCS}#create-a-pull-request")
        if r.archived:
            raise _error(403, "Repository was archived so is read-only.")
        owner, _, head = str(data["head"]).rpartition(":")
        base = str(data["base"])
        branches = r.repo.branches()
        bad = [
            {"resource": "PullRequest", "field": name, "code": "invalid"}
            for name, ok in (
                ("head", head in branches and owner.lower() in ("", r.owner.login.lower())),
                ("base", base in branches),
            )
            if not ok
        ]
        if bad:
            raise _invalid(bad, f"{PULLS_DOCS}#create-a-pull-request")
        for pr in (p for p in self.pulls if p.repo is r):
            self._sync(pr, branches)
            if pr.state == "open" and (pr.head_ref, pr.base_ref) == (head, base):
                message = f"A pull request already exists for {r.owner.login}:{head}."
                raise _invalid(
                    [{"resource": "PullRequest", "code": "custom", "message": message}],
                    f"{PULLS_DOCS}#create-a-pull-request",
                )
        if r.repo.is_ancestor(branches[head], branches[base]):
            message = f"No commits between {base} and {head}"
            raise _invalid([{"resource": "PullRequest", "code": "custom", "message": message}])
        pr = Pull(
            self._next("pull"),
            r.next_number,
            r,
            head,
            base,
            str(data["title"]),
            self.user,
            branches[head],
            body=str(data.get("body") or ""),
            draft=bool(data.get("draft")),
        )
        r.next_number += 1
        self.pulls.append(pr)
        result = self._pull_json(pr, branches, full=True, consume=False)
        result.update(mergeable=None, rebaseable=None, mergeable_state="unknown")  # async on GitHub
        return self._json(201, result, {"Location": result["url"]})

    def _get_pull(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        branches = pr.repo.repo.branches()
        self._sync(pr, branches)
        return self._json(200, self._pull_json(pr, branches, full=True))

    def _update_pull(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        data = self._object_body(req)
        branches = pr.repo.repo.branches()
        self._sync(pr, branches)
        if pr.repo.archived:
            raise _error(403, "Repository was archived so is read-only.")
        state = data.get("state")
        if state not in (None, "open", "closed"):
            raise _invalid([{"resource": "PullRequest", "field": "state", "code": "invalid"}])
        base = data.get("base")
        if base is not None and base not in branches:
            raise _invalid([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        if state == "open" and pr.state == "closed":
            problem = None
            if pr.merged:
                problem = "state cannot be changed. The pull request has been merged."
            elif pr.head_ref not in branches:
                problem = f"state cannot be changed. The {pr.head_ref} branch has been deleted."
            elif any(
                o is not pr
                and o.repo is pr.repo
                and o.state == "open"
                and (o.head_ref, o.base_ref) == (pr.head_ref, base or pr.base_ref)
                for o in self.pulls
            ):
                problem = f"A pull request already exists for {pr.repo.owner.login}:{pr.head_ref}."
            if problem:
                raise _invalid([{"resource": "PullRequest", "code": "custom", "message": problem}])
            pr.state, pr.closed_at = "open", None
            pr.head_sha = branches[pr.head_ref]
        elif state == "closed" and pr.state == "open":
            pr.state, pr.closed_at, pr.auto_merge = "closed", _now(), None
        if "title" in data:
            pr.title = str(data["title"])
        if "body" in data:
            pr.body = str(data["body"] or "")
        if base is not None:
            pr.base_ref = str(base)
        pr.updated_at = _now()
        return self._json(200, self._pull_json(pr, branches, full=True, consume=False))

    def _get_merged(self, req: Request, m: dict[str, str]) -> Response:
        if self._pull(m).merged:
            return Response.empty(204)
        raise _not_found()

    def _merge_pull(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        data = self._object_body(req)
        branches = pr.repo.repo.branches()
        self._sync(pr, branches)
        doc = f"{PULLS_DOCS}#merge-a-pull-request"
        if pr.repo.archived:
            raise _error(403, "Repository was archived so is read-only.")
        if pr.state != "open":
            raise _error(405, "Pull Request is not mergeable", doc)
        if data.get("sha") and data["sha"] != pr.head_sha:
            raise _error(409, "Head branch was modified. Review and try the merge again.", doc)
        method = data.get("merge_method", "merge")
        if method not in ("merge", "squash", "rebase"):
            raise _invalid(
                [{"resource": "PullRequest", "field": "merge_method", "code": "invalid"}], doc
            )
        state = self._mergeability(pr, branches, consume=False)[1]
        if state in ("dirty", "draft"):
            raise _error(405, "Pull Request is not mergeable", doc)
        blockers = self._blockers(pr)
        if blockers:
            raise _error(405, " ".join(blockers), doc)
        sha = self._perform_merge(
            pr, method, self.user, data.get("commit_title"), data.get("commit_message")
        )
        return self._json(
            200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    def _list_reviews(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        return self._paginate(req, pr.reviews, lambda review: self._review_json(pr, review))

    def _create_review(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        data = self._object_body(req)
        event = data.get("event")
        states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}
        if event in states and pr.user is self.user:
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise _error(
                422, "Unprocessable Entity", errors=[f"Review Can not {verb} your own pull request"]
            )
        if event not in (*states, "COMMENT"):
            raise _error(422, "Unprocessable Entity", errors=["event is invalid"])
        review = Review(
            self._next("review"),
            self.user,
            states.get(str(event), "COMMENTED"),
            str(data.get("commit_id") or pr.head_sha),
            str(data.get("body") or ""),
        )
        pr.reviews.append(review)
        self._try_auto_merge(pr)
        return self._json(200, self._review_json(pr, review))

    def _request_reviewers(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        data = self._object_body(req)
        users = []
        for login in data.get("reviewers") or []:
            account = self.accounts.get(str(login).lower())
            if account is pr.user:
                raise _error(422, "Review cannot be requested from pull request author.")
            if account is None or account.type != "User":
                raise _error(
                    422,
                    "Reviews may only be requested from collaborators. One or more of the users "
                    "or teams you specified is not a collaborator of the "
                    f"{pr.repo.full_name} repository.",
                )
            users.append(account)
        pr.requested_reviewers += [u for u in users if u not in pr.requested_reviewers]
        pr.requested_teams += [str(t) for t in data.get("team_reviewers") or []]
        branches = pr.repo.repo.branches()
        return self._json(201, self._pull_json(pr, branches, full=False))

    # == handlers: issue side of pull requests =========================================
    def _get_issue(self, req: Request, m: dict[str, str]) -> Response:
        return self._json(200, self._issue_json(self._pull(m)))

    def _add_labels(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        data = self._body(req)
        raw = data.get("labels") if isinstance(data, dict) else data
        if not isinstance(raw, list):
            raise _invalid([{"resource": "Label", "field": "labels", "code": "invalid"}])
        names = [str(x["name"] if isinstance(x, dict) else x) for x in raw]
        if req.method == "PUT":
            pr.labels = []
        pr.labels += [n for n in names if n not in pr.labels]
        pr.updated_at = _now()
        return self._json(200, [self._label_json(pr.repo, n) for n in sorted(pr.labels)])

    def _remove_label(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        if m["name"] not in pr.labels:
            raise _error(404, "Label does not exist")
        pr.labels.remove(m["name"])
        return self._json(200, [self._label_json(pr.repo, n) for n in sorted(pr.labels)])

    def _add_assignees(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        for login in self._object_body(req).get("assignees") or []:  # unknown users: ignored
            account = self.accounts.get(str(login).lower())
            if account is not None and account.type == "User" and account not in pr.assignees:
                pr.assignees.append(account)
        return self._json(201, self._issue_json(pr))

    def _list_comments(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        return self._paginate(req, pr.comments, lambda c: self._comment_json(pr, c))

    def _create_comment(self, req: Request, m: dict[str, str]) -> Response:
        pr = self._pull(m)
        body = self._object_body(req).get("body")
        if not body:
            raise _invalid([{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        comment = Comment(self._next("comment"), self.user, str(body))
        pr.comments.append(comment)
        return self._json(201, self._comment_json(pr, comment))

    # == handlers: checks and statuses =================================================
    def _list_check_runs(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        sha = self._resolve(r, m["ref"])
        runs = sorted((c for c in r.check_runs if c.head_sha == sha), key=lambda c: -c.id)
        if req.arg("filter", "latest") == "latest":  # the newest run of each name
            latest: dict[str, CheckRun] = {}
            for run in runs:
                latest.setdefault(run.name, run)
            runs = list(latest.values())
        if req.arg("check_name"):
            runs = [c for c in runs if c.name == req.arg("check_name")]
        if req.arg("status"):
            runs = [c for c in runs if c.status == req.arg("status")]
        page, headers = self._page(req, runs)
        rendered = [self._check_run_json(r, c) for c in page]
        return self._json(200, {"total_count": len(runs), "check_runs": rendered}, headers)

    def _combined_status(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        sha = self._resolve(r, m["ref"])
        latest: dict[str, CommitStatus] = {}
        for s in sorted((s for s in r.statuses if s.sha == sha), key=lambda s: s.id):
            latest[s.context] = s
        states = {s.state for s in latest.values()}
        if states & {"failure", "error"}:
            state = "failure"
        elif not latest or "pending" in states:
            state = "pending"
        else:
            state = "success"
        api = f"{self.url}/repos/{r.full_name}"
        return self._json(
            200,
            {
                "state": state,
                "statuses": [self._status_json(s) for s in latest.values()],
                "sha": sha,
                "total_count": len(latest),
                "repository": self._repo_json(r),
                "commit_url": f"{api}/commits/{sha}",
                "url": f"{api}/commits/{sha}/status",
            },
        )

    def _create_status(self, req: Request, m: dict[str, str]) -> Response:
        r = self._repo(m)
        data = self._object_body(req)
        if data.get("state") not in ("error", "failure", "pending", "success"):
            raise _invalid([{"resource": "Status", "field": "state", "code": "custom"}])
        status = CommitStatus(
            self._next("status"),
            self._resolve(r, m["sha"]),
            str(data.get("context") or "default"),
            str(data["state"]),
            data.get("description"),
            data.get("target_url"),
        )
        r.statuses.append(status)
        self._auto_merge_all(r)
        return self._json(201, self._status_json(status))

    # == handlers: GraphQL =============================================================
    @staticmethod
    def _graphql_arg(query: str, variables: Mapping[str, Any], name: str) -> Any:
        """Argument ``name`` of the mutation: a literal, a ``$variable`` or an input field."""
        match = re.search(rf'\b{name}\s*:\s*(?:"((?:[^"\\]|\\.)*)"|\$(\w+)|(\w+))', query)
        if match:
            literal, var, enum = match.groups()
            return literal if literal is not None else variables.get(var) if var else enum
        stack: list[Any] = [variables]
        while stack:
            item = stack.pop()
            if isinstance(item, Mapping):
                if name in item:
                    return item[name]
                stack.extend(item.values())
        return None

    def _graphql(self, req: Request, m: dict[str, str]) -> Response:
        data = self._object_body(req)
        query = str(data.get("query") or "")
        variables = data.get("variables") or {}
        ops = ("enablePullRequestAutoMerge", "disablePullRequestAutoMerge")
        op = next((o for o in ops if re.search(rf"\b{o}\b", query)), None)

        def failure(kind: str, message: str) -> Response:
            error = {
                "type": kind,
                "path": [op],
                "locations": [{"line": 2, "column": 3}],
                "message": message,
            }
            return self._json(200, {"data": {op: None}, "errors": [error]})

        if op is None:
            message = "This test server answers only " + " and ".join(ops)
            return self._json(200, {"errors": [{"message": message}]})
        node_id = self._graphql_arg(query, variables, "pullRequestId")
        pr = next((p for p in self.pulls if p.node_id == node_id), None)
        if pr is None:
            return failure(
                "NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'"
            )
        branches = pr.repo.repo.branches()
        self._sync(pr, branches)
        if op == "enablePullRequestAutoMerge":
            method = str(self._graphql_arg(query, variables, "mergeMethod") or "MERGE").upper()
            expected = self._graphql_arg(query, variables, "expectedHeadOid")
            if not pr.repo.allow_auto_merge:
                return failure(
                    "UNPROCESSABLE", "Pull request Auto merge is not allowed for this repository"
                )
            if pr.state != "open":
                return failure("UNPROCESSABLE", "Pull request Pull request is closed")
            if expected and expected != pr.head_sha:
                return failure("UNPROCESSABLE", "Pull request head commit has changed")
            state = self._mergeability(pr, branches, consume=False)[1]
            if state not in ("blocked", "unknown", "behind"):
                return failure("UNPROCESSABLE", f"Pull request Pull request is in {state} status")
            pr.auto_merge = {
                "enabled_by": self._account_json(self.user),
                "merge_method": method.lower() if method in ("SQUASH", "REBASE") else "merge",
                "commit_title": self._graphql_arg(query, variables, "commitHeadline"),
                "commit_message": self._graphql_arg(query, variables, "commitBody"),
            }
            request: dict[str, Any] | None = {
                "enabledAt": _now(),
                "mergeMethod": pr.auto_merge["merge_method"].upper(),
                "enabledBy": {"login": self.user.login},
            }
        else:
            pr.auto_merge, request = None, None
        pull = {
            "id": pr.node_id,
            "number": pr.number,
            "autoMergeRequest": request,
            "url": f"{self.url}/{pr.repo.full_name}/pull/{pr.number}",
        }
        return self._json(200, {"data": {op: {"clientMutationId": None, "pullRequest": pull}}})
