"""GitHub (github.com or Enterprise Server) over the REST API v3 and one GraphQL mutation.

Repositories are those of ``groups`` (organisations, or users when no such
organisation exists), or every repository the token can see.  Pull requests are
looked up with ``head=owner:branch`` (without the owner GitHub silently ignores
the filter), created once (a 422 "A pull request already exists" or a create
whose answer got lost both end in the existing PR), updated, closed with a
comment, merged with the head ``sha`` guard, or set to merge automatically
through GraphQL ``enablePullRequestAutoMerge``.  Mutating requests are spaced 1 s
apart, one at a time, as GitHub asks of integrations.  git authenticates as
``x-access-token`` with the token as password.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ..gitops import redact, register_secret
from .base import ForgeError, MergeRequest, MRSpec, RepoRef
from .credentials import git_credential_env, missing_token_error, read_token
from .http import (
    DEFAULT_TIMEOUT,
    ApiClient,
    ApiError,
    RetryPolicy,
    TransientError,
    repo_error,
)

DEFAULT_URL = "https://api.github.com"
DEFAULT_TOKEN_ENV = "GITHUB_TOKEN"
GIT_USERNAME = "x-access-token"
#: GitHub: "make requests serially ... wait at least one second between each request"
DEFAULT_WRITE_INTERVAL = 1.0
NOT_MERGEABLE = frozenset({405, 422})
MERGEABLE_STATES = frozenset({"clean", "unstable", "has_hooks"})
CHECK_SUCCESS = frozenset({"success", "neutral", "skipped"})
STATUS_STATES = {"success": "success", "pending": "pending", "failure": "failed", "error": "failed"}
PIPELINE_ORDER = ("failed", "canceled", "running", "pending", "success")

ENABLE_AUTO_MERGE = """
mutation($pr: ID!, $sha: GitObjectID!) {
  enablePullRequestAutoMerge(input: {pullRequestId: $pr, expectedHeadOid: $sha, mergeMethod: MERGE}) {
    pullRequest { id number autoMergeRequest { enabledAt mergeMethod } }
  }
}
"""
MARK_DRAFT = """
mutation($pr: ID!) { convertPullRequestToDraft(input: {pullRequestId: $pr}) { pullRequest { id isDraft } } }
"""
MARK_READY = """
mutation($pr: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $pr}) { pullRequest { id isDraft } } }
"""


def normalize_url(url: str | None) -> str:
    """The REST API root: ``https://api.github.com`` or ``https://ghe.example.com/api/v3``."""
    url = (url or DEFAULT_URL).strip().rstrip("/")
    parsed = httpx.URL(url)
    if parsed.host in ("github.com", "www.github.com"):
        return DEFAULT_URL
    if parsed.host != "api.github.com" and parsed.path in ("", "/"):
        return f"{url}/api/v3"  # GitHub Enterprise Server serves its API under /api/v3
    return url


def graphql_url(api_url: str) -> str:
    if api_url.endswith("/api/v3"):
        return api_url.removesuffix("/v3") + "/graphql"
    return f"{api_url}/graphql"


class GraphQLError(ForgeError):
    """GitHub answered a GraphQL request with ``errors``."""


def _pipeline(states: Sequence[str]) -> str | None:
    for state in PIPELINE_ORDER:
        if state in states:
            return state
    return None


def _check_run_state(run: dict[str, Any]) -> str:
    if run.get("status") == "in_progress":
        return "running"
    if run.get("status") != "completed":
        return "pending"  # queued, requested, waiting, pending
    conclusion = run.get("conclusion")
    if conclusion in CHECK_SUCCESS:
        return "success"
    return "canceled" if conclusion == "cancelled" else "failed"


def approval_state(reviews: Sequence[dict[str, Any]]) -> bool:
    """Approved: someone's latest verdict is APPROVED and nobody's is CHANGES_REQUESTED."""
    latest: dict[str, str] = {}
    for review in reviews:  # chronological
        state = review.get("state")
        user = (review.get("user") or {}).get("login")
        if user and state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[user] = state
    verdicts = set(latest.values())
    return "APPROVED" in verdicts and "CHANGES_REQUESTED" not in verdicts


class GitHubForge:
    """A :class:`~fleetchange.forges.base.Forge` for github.com or one GitHub Enterprise Server."""

    def __init__(
        self,
        url: str | None = DEFAULT_URL,
        *,
        groups: Sequence[str] = (),
        token: str | None = None,
        token_env: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        write_interval: float | None = None,
        retry: RetryPolicy | None = None,
        per_page: int = 100,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.graphql_url = graphql_url(self.url)
        self.key = "github-" + hashlib.sha256(self.url.encode()).hexdigest()[:12]
        self.groups = tuple(g.strip("/") for g in groups)
        if token is None:
            token, self._token_var = read_token(token_env, DEFAULT_TOKEN_ENV, "GitHub")
        else:
            register_secret(token)
            self._token_var = token_env or DEFAULT_TOKEN_ENV
        self._token = token
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.api = ApiClient(
            self.url,
            forge="GitHub",
            headers=headers,
            transport=transport,
            timeout=timeout,
            write_interval=DEFAULT_WRITE_INTERVAL if write_interval is None else write_interval,
            retry=retry,
            per_page=per_page,
            sleep=sleep,
            clock=clock,
            now=now,
            rng=rng,
        )

    def __repr__(self) -> str:
        return f"GitHubForge({self.url!r})"

    # -- plumbing ------------------------------------------------------------------

    def _client(self) -> ApiClient:
        if self._token is None:
            raise missing_token_error(self._token_var, "GitHub", self.url)
        return self.api

    @staticmethod
    def _repo(repo: RepoRef) -> str:
        return f"/repos/{repo.name}"

    @contextlib.contextmanager
    def _errors(self, repo: RepoRef, number: int | None = None) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            raise repo_error(exc, repo.name, number=number) from None

    def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        api = self._client()
        data = api.json(
            api.request("POST", self.graphql_url, json={"query": query, "variables": variables})
        )
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            message = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
            raise GraphQLError(redact(message or str(errors)))
        result = data.get("data") if isinstance(data, dict) else None
        return result if isinstance(result, dict) else {}

    # -- listing -------------------------------------------------------------------

    def list_repos(self) -> Iterator[RepoRef]:
        api = self._client()
        seen: set[int] = set()
        batches: list[list[dict[str, Any]]] = []
        if not self.groups:
            batches.append(list(api.paginate("/user/repos", {"sort": "full_name"})))
        for group in self.groups:
            if not group or "/" in group:
                raise ForgeError(
                    f"{group!r} is not a GitHub organisation or user name ([targets] groups)"
                )
            batches.append(self._owner_repos(group))
        for batch in batches:
            for data in batch:
                if data["id"] not in seen:
                    seen.add(data["id"])
                    yield self._repo_ref(data)

    def _owner_repos(self, owner: str) -> list[dict[str, Any]]:
        api = self._client()
        name = quote(owner, safe="")
        try:
            return list(api.paginate(f"/orgs/{name}/repos", {"type": "all", "sort": "full_name"}))
        except ApiError as exc:
            if exc.status != 404:
                raise self._listing_error(owner, exc) from None
        try:  # not an organisation: a user (the token's own one sees its private repos)
            me = api.get("/user")
            if str(me.get("login", "")).lower() == owner.lower():
                params = {"affiliation": "owner", "sort": "full_name"}
                return [
                    data
                    for data in api.paginate("/user/repos", params)
                    if str((data.get("owner") or {}).get("login", "")).lower() == owner.lower()
                ]
            return list(
                api.paginate(f"/users/{name}/repos", {"type": "owner", "sort": "full_name"})
            )
        except ApiError as exc:
            if exc.status == 404:
                raise ForgeError(
                    f"GitHub organisation or user {owner!r} not found at {self.url} "
                    "(check [targets] groups, or the token cannot see it)"
                ) from None
            raise self._listing_error(owner, exc) from None

    def _listing_error(self, owner: str, exc: ApiError) -> ForgeError:
        if exc.status == 403:
            return ForgeError(
                f"missing permission (403) to list the repositories of {owner!r}: {exc.message}"
            )
        return exc

    @staticmethod
    def _repo_ref(data: dict[str, Any]) -> RepoRef:
        empty = data.get("size") == 0
        return RepoRef(
            name=data["full_name"],
            clone_url=data["clone_url"],
            default_branch=None if empty else data.get("default_branch"),
            web_url=data.get("html_url") or "",
            archived=bool(data.get("archived")),
            empty=empty,
            fork=bool(data.get("fork")),
            topics=tuple(str(t) for t in data.get("topics") or ()),
            forge_id=str(data.get("node_id") or ""),
        )

    def git_env(self) -> dict[str, str]:
        self._client()
        assert self._token is not None
        return git_credential_env(GIT_USERNAME, self._token)

    # -- pull requests -------------------------------------------------------------

    @staticmethod
    def _pr(
        data: dict[str, Any],
        *,
        labels: Sequence[str] | None = None,
        pipeline: str | None = None,
        approved: bool | None = None,
        extra: dict[str, str] | None = None,
    ) -> MergeRequest:
        if data.get("state") == "open":
            state = "open"
        else:
            state = "merged" if data.get("merged") or data.get("merged_at") else "closed"
        raw_mergeable = data.get("mergeable")
        merge_status = data.get("mergeable_state")
        mergeable: bool | None = None
        if raw_mergeable is not None and merge_status not in (None, "unknown"):
            mergeable = bool(raw_mergeable) and merge_status in MERGEABLE_STATES
        if labels is None:
            labels = [
                x["name"] if isinstance(x, dict) else str(x) for x in data.get("labels") or []
            ]
        info = {"node_id": str(data.get("node_id") or "")}
        if data.get("auto_merge"):
            info["auto_merge"] = "true"
        info.update(extra or {})
        head = data.get("head") or {}
        return MergeRequest(
            number=int(data["number"]),
            url=str(data.get("html_url") or ""),
            state=state,  # type: ignore[arg-type]
            source_branch=str(head.get("ref") or ""),
            target_branch=str((data.get("base") or {}).get("ref") or ""),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            head_sha=head.get("sha"),
            draft=bool(data.get("draft")),
            labels=tuple(labels),
            pipeline=pipeline,
            approved=approved,
            approvals_left=None,
            mergeable=mergeable,
            merge_status=str(merge_status) if merge_status else None,
            has_conflicts=merge_status == "dirty",
            extra=info,
        )

    def find_mr(self, repo: RepoRef, source_branch: str) -> MergeRequest | None:
        """Open first, else the newest; ``head`` is always ``owner:branch``."""
        api = self._client()
        owner = repo.name.split("/")[0]
        params = {
            "head": f"{owner}:{source_branch}",
            "state": "all",
            "sort": "created",
            "direction": "desc",
        }
        label = params["head"].lower()
        with self._errors(repo):
            found = [  # the filter again: GitHub ignores a head it does not understand
                pr
                for pr in api.paginate(f"{self._repo(repo)}/pulls", params)
                if str((pr.get("head") or {}).get("label", "")).lower() == label
            ]
        if not found:
            return None
        opened = [pr for pr in found if pr.get("state") == "open"]
        return self._pr((opened or found)[0])

    def create_mr(self, repo: RepoRef, spec: MRSpec) -> MergeRequest:
        api = self._client()
        owner = repo.name.split("/")[0]
        data: dict[str, Any] = {
            "title": spec.title,
            "head": f"{owner}:{spec.source_branch}",
            "base": spec.target_branch,
            "body": spec.body,
            "draft": spec.draft,
        }
        with self._errors(repo):
            created: dict[str, Any] | None = None
            last: TransientError | None = None
            for _ in api.attempts():
                try:
                    response = api.request(
                        "POST", f"{self._repo(repo)}/pulls", json=data, transient="raise"
                    )
                except TransientError as exc:
                    # the create may have landed before the answer got lost: look before retrying
                    last = exc
                    found = self.find_mr(repo, spec.source_branch)
                    if found is not None and found.state == "open":
                        return self._align(repo, found, spec)
                    continue
                except ApiError as exc:
                    if exc.status == 422 and "already exists" in exc.message:
                        found = self.find_mr(repo, spec.source_branch)
                        if found is not None and found.state == "open":
                            return self._align(repo, found, spec)
                    if exc.status == 422 and data["draft"] and "draft" in exc.message.lower():
                        data["draft"] = False  # "Draft pull requests are not supported ..."
                        continue
                    raise
                created = api.json(response)
                break
            if created is None:
                assert last is not None
                raise last
            return self._decorate(repo, created, spec)

    def _decorate(self, repo: RepoRef, created: dict[str, Any], spec: MRSpec) -> MergeRequest:
        """Labels, assignees and reviewers of a new pull request (separate calls on GitHub)."""
        api = self._client()
        number = int(created["number"])
        issue = f"{self._repo(repo)}/issues/{number}"
        labels: list[str] = []
        if spec.labels:
            answer = api.json(
                api.request("POST", f"{issue}/labels", json={"labels": list(spec.labels)})
            )
            labels = [x["name"] for x in answer]
        extra: dict[str, str] = {}
        if spec.assignees:
            api.request("POST", f"{issue}/assignees", json={"assignees": list(spec.assignees)})
        if spec.reviewers:
            try:
                api.request(
                    "POST",
                    f"{self._repo(repo)}/pulls/{number}/requested_reviewers",
                    json={"reviewers": list(spec.reviewers)},
                )
            except ApiError as exc:  # a reviewer who may not review must not fail the change
                if exc.status != 422:
                    raise
                extra["reviewers_error"] = exc.message
        return self._pr(created, labels=labels, extra=extra)

    def _align(self, repo: RepoRef, mr: MergeRequest, spec: MRSpec) -> MergeRequest:
        """A PR found instead of created: make it say what ``spec`` says."""
        if (mr.title, mr.body, sorted(mr.labels), mr.draft) == (
            spec.title,
            spec.body,
            sorted(spec.labels),
            spec.draft,
        ):
            return mr
        return self.update_mr(repo, mr, spec)

    def update_mr(self, repo: RepoRef, mr: MergeRequest, spec: MRSpec) -> MergeRequest:
        api = self._client()
        path = f"{self._repo(repo)}/pulls/{mr.number}"
        with self._errors(repo, mr.number):
            data = api.json(
                api.request("PATCH", path, json={"title": spec.title, "body": spec.body})
            )
            labels: Sequence[str] | None = None
            if sorted(mr.labels) != sorted(spec.labels):
                answer = api.json(
                    api.request(
                        "PUT",
                        f"{self._repo(repo)}/issues/{mr.number}/labels",
                        json={"labels": list(spec.labels)},
                    )
                )
                labels = [x["name"] for x in answer]
            if bool(data.get("draft")) != spec.draft and data.get("state") == "open":
                # REST cannot change it; GraphQL can (not on every GHES version)
                try:
                    self._graphql(MARK_DRAFT if spec.draft else MARK_READY, {"pr": data["node_id"]})
                    data["draft"] = spec.draft
                except GraphQLError:
                    pass
        return self._pr(data, labels=labels)

    def _checks(self, repo: RepoRef, sha: str) -> str | None:
        """Commit statuses and check runs on ``sha``, folded into one pipeline status."""
        api = self._client()
        commit = f"{self._repo(repo)}/commits/{sha}"
        states: list[str] = []
        combined = api.get(f"{commit}/status")
        for status in combined.get("statuses") or []:
            states.append(STATUS_STATES.get(str(status.get("state")), "pending"))
        try:
            runs = list(api.paginate(f"{commit}/check-runs", items="check_runs"))
        except ApiError as exc:  # a token without checks:read still sees statuses
            if exc.status not in (403, 404):
                raise
            runs = []
        states += [_check_run_state(run) for run in runs]
        return _pipeline(states)

    def get_mr(self, repo: RepoRef, number: int) -> MergeRequest:
        api = self._client()
        path = f"{self._repo(repo)}/pulls/{number}"
        with self._errors(repo, number):
            data = api.get(path)
            reviews = list(api.paginate(f"{path}/reviews"))
            head = (data.get("head") or {}).get("sha")
            pipeline = self._checks(repo, head) if head else None
        return self._pr(data, pipeline=pipeline, approved=approval_state(reviews))

    def comment_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> None:
        api = self._client()
        comments = f"{self._repo(repo)}/issues/{mr.number}/comments"
        with self._errors(repo, mr.number):
            last: TransientError | None = None
            for _ in api.attempts():
                try:
                    api.request("POST", comments, json={"body": comment}, transient="raise")
                    return
                except TransientError as exc:  # posted already? a comment twice is noise
                    last = exc
                    if any(c.get("body") == comment for c in api.paginate(comments)):
                        return
            assert last is not None
            raise last

    def close_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> MergeRequest:
        if comment:
            self.comment_mr(repo, mr, comment)
        api = self._client()
        path = f"{self._repo(repo)}/pulls/{mr.number}"
        with self._errors(repo, mr.number):
            data = api.json(api.request("PATCH", path, json={"state": "closed"}))
        return self._pr(data)

    def merge_mr(
        self, repo: RepoRef, mr: MergeRequest, *, sha: str, auto: bool = False
    ) -> MergeRequest:
        where = f"{repo.name}#{mr.number}"
        if auto:
            node_id = mr.extra.get("node_id") or self.get_mr(repo, mr.number).extra["node_id"]
            try:
                self._graphql(ENABLE_AUTO_MERGE, {"pr": node_id, "sha": sha})
                return self.get_mr(repo, mr.number)
            except GraphQLError as exc:
                message = str(exc)
                if "head commit has changed" in message or "expected head" in message.lower():
                    raise ForgeError(
                        f"{where}: head moved (expected {sha[:12]}): {message}"
                    ) from None
                if not any(f"{s} status" in message for s in MERGEABLE_STATES):
                    raise ForgeError(f"{where}: cannot enable auto-merge: {message}") from None
                # nothing required is pending, so GitHub will not wait: merge now if the
                # checks we can see passed, never behind a running or failed pipeline
                checks = self.get_mr(repo, mr.number).pipeline
                if checks not in (None, "success"):
                    raise ForgeError(
                        f"{where}: checks are {checks} but branch protection requires none, "
                        "so GitHub cannot merge automatically; merge again once they pass"
                    ) from None
            except ApiError as exc:
                raise repo_error(exc, repo.name, number=mr.number) from None
        api = self._client()
        path = f"{self._repo(repo)}/pulls/{mr.number}/merge"
        try:
            api.request("PUT", path, json={"sha": sha, "merge_method": "merge"})
        except ApiError as exc:
            if exc.status == 409:
                raise ForgeError(
                    f"{where}: head moved (expected {sha[:12]}): {exc.message}"
                ) from None
            if exc.status in NOT_MERGEABLE:
                current = self.get_mr(repo, mr.number)
                if current.state == "merged":  # a retry of a merge that went through
                    return current
                raise ForgeError(f"{where}: not mergeable: {exc.message} ({exc.status})") from None
            raise repo_error(exc, repo.name, number=mr.number) from None
        return self.get_mr(repo, mr.number)

    def delete_branch(self, repo: RepoRef, branch: str) -> None:
        api = self._client()
        path = f"{self._repo(repo)}/git/refs/heads/{quote(branch, safe='/')}"
        with self._errors(repo):
            api.request("DELETE", path, ok=(404, 422))
