"""GitLab (gitlab.com or self-hosted) over the REST API v4, with httpx.

Repositories are the projects of ``groups`` (subgroups included), or every
project the token is a member of.  Merge requests are found by source branch,
created once (a 409 "Another open merge request already exists" or a create
whose answer got lost both end in the existing MR), updated, closed with a
note and merged with the head ``sha`` guard.  git pushes and fetches with the
token through :mod:`~fleetchange.forges.credentials` (user name ``oauth2``).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ..gitops import register_secret
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

DEFAULT_URL = "https://gitlab.com"
DEFAULT_TOKEN_ENV = "GITLAB_TOKEN"
GIT_USERNAME = "oauth2"
#: GitLab asks for no spacing between writes; its limits are per minute
DEFAULT_WRITE_INTERVAL = 0.0
DRAFT_PREFIX = "Draft: "
_DRAFT_TITLE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s+-\s|\[wip\]|wip:)\s*", re.I)
MR_STATES = {"opened": "open", "locked": "open", "merged": "merged", "closed": "closed"}
#: detailed_merge_status values meaning "GitLab has not decided yet"
UNDECIDED = frozenset({"unchecked", "checking", "preparing", "approvals_syncing"})
PIPELINE_STATES = {
    "created": "pending",
    "waiting_for_resource": "pending",
    "preparing": "pending",
    "pending": "pending",
    "scheduled": "pending",
    "manual": "pending",
    "running": "running",
    "success": "success",
    "failed": "failed",
    "canceled": "canceled",
    "canceling": "canceled",
    "skipped": "skipped",
}
NOT_MERGEABLE = frozenset({405, 406, 422})  # 422 today, 405/406 on older versions


def normalize_url(url: str | None) -> str:
    """``https://gitlab.example.com`` from the URL as written (``/api/v4`` tolerated)."""
    url = (url or DEFAULT_URL).strip().rstrip("/")
    return url.removesuffix("/api/v4").rstrip("/")


class GitLabForge:
    """A :class:`~fleetchange.forges.base.Forge` for one GitLab instance."""

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
        self.key = "gitlab-" + hashlib.sha256(self.url.encode()).hexdigest()[:12]
        self.groups = tuple(g.strip("/") for g in groups)
        if token is None:
            token, self._token_var = read_token(token_env, DEFAULT_TOKEN_ENV, "GitLab")
        else:
            register_secret(token)
            self._token_var = token_env or DEFAULT_TOKEN_ENV
        self._token = token
        self.api = ApiClient(
            f"{self.url}/api/v4",
            forge="GitLab",
            headers={"Authorization": f"Bearer {token}"} if token else {},
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
        self._users: dict[str, int | None] = {}
        self._users_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GitLabForge({self.url!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_users_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._users_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------

    def _client(self) -> ApiClient:
        if self._token is None:
            raise missing_token_error(self._token_var, "GitLab", self.url)
        return self.api

    @staticmethod
    def _project(repo: RepoRef) -> str:
        return f"/projects/{repo.forge_id or quote(repo.name, safe='')}"

    def _mr_path(self, repo: RepoRef, number: int) -> str:
        return f"{self._project(repo)}/merge_requests/{number}"

    @contextlib.contextmanager
    def _errors(self, repo: RepoRef, number: int | None = None) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            raise repo_error(exc, repo.name, number=number) from None

    # -- listing -------------------------------------------------------------------

    def list_repos(self) -> Iterator[RepoRef]:
        api = self._client()
        seen: set[int] = set()
        sources: list[tuple[str, str, dict[str, str | int | bool]]] = []
        order: dict[str, str | int | bool] = {"order_by": "id", "sort": "asc"}
        if self.groups:
            for group in self.groups:
                path = f"/groups/{quote(group, safe='')}/projects"
                params = {**order, "include_subgroups": "true", "with_shared": "false"}
                sources.append((group, path, params))
        else:
            sources.append(("", "/projects", {**order, "membership": "true"}))
        for group, path, params in sources:
            try:
                projects = list(api.paginate(path, params))
            except ApiError as exc:
                if group and exc.status == 404:
                    raise ForgeError(
                        f"GitLab group {group!r} not found at {self.url} "
                        "(check [targets] groups, or the token cannot see it)"
                    ) from None
                if exc.status == 403:
                    raise ForgeError(
                        f"missing permission (403) to list {('group ' + repr(group)) if group else 'projects'} "
                        f"at {self.url}: {exc.message}"
                    ) from None
                raise
            for project in projects:
                if project["id"] not in seen:
                    seen.add(project["id"])
                    yield self._repo_ref(project)

    @staticmethod
    def _repo_ref(project: dict[str, Any]) -> RepoRef:
        empty = bool(project.get("empty_repo"))
        topics = project.get("topics") or project.get("tag_list") or []
        return RepoRef(
            name=project["path_with_namespace"],
            clone_url=project["http_url_to_repo"],
            default_branch=None if empty else project.get("default_branch"),
            web_url=project.get("web_url") or "",
            archived=bool(project.get("archived")),
            empty=empty,
            fork=project.get("forked_from_project") is not None,
            topics=tuple(str(t) for t in topics),
            forge_id=str(project["id"]),
        )

    def git_env(self) -> dict[str, str]:
        self._client()
        assert self._token is not None
        return git_credential_env(GIT_USERNAME, self._token)

    # -- merge requests ------------------------------------------------------------

    def _mr(self, data: dict[str, Any], approvals: dict[str, Any] | None = None) -> MergeRequest:
        draft = bool(data.get("draft", data.get("work_in_progress", False)))
        title = str(data.get("title") or "")
        if draft:
            title = _DRAFT_TITLE.sub("", title, count=1)
        detailed = data.get("detailed_merge_status")
        mergeable: bool | None
        merge_status: str | None
        if detailed:
            mergeable = None if detailed in UNDECIDED else detailed == "mergeable"
            merge_status = str(detailed)
        else:  # before GitLab 15.6
            legacy = data.get("merge_status")
            mergeable = {"can_be_merged": True, "cannot_be_merged": False}.get(str(legacy))
            merge_status = str(legacy) if legacy else None
        pipeline = data.get("head_pipeline")
        status = pipeline.get("status") if isinstance(pipeline, dict) else None
        labels = [x["name"] if isinstance(x, dict) else str(x) for x in data.get("labels") or []]
        extra = {"id": str(data.get("id", ""))}
        if data.get("merge_when_pipeline_succeeds"):
            extra["auto_merge"] = "true"
        approved = approvals_left = None
        if approvals is not None:
            left = approvals.get("approvals_left")
            approvals_left = int(left) if isinstance(left, int) else None
            verdict = approvals.get("approved")
            approved = bool(verdict) if verdict is not None else approvals_left == 0
        return MergeRequest(
            number=int(data["iid"]),
            url=str(data.get("web_url") or ""),
            state=MR_STATES.get(str(data.get("state")), "closed"),  # type: ignore[arg-type]
            source_branch=str(data["source_branch"]),
            target_branch=str(data["target_branch"]),
            title=title,
            body=str(data.get("description") or ""),
            head_sha=data.get("sha"),
            draft=draft,
            labels=tuple(labels),
            pipeline=PIPELINE_STATES.get(str(status), str(status)) if status else None,
            approved=approved,
            approvals_left=approvals_left,
            mergeable=mergeable,
            merge_status=merge_status,
            has_conflicts=bool(data.get("has_conflicts")),
            extra=extra,
        )

    def find_mr(self, repo: RepoRef, source_branch: str) -> MergeRequest | None:
        """Open first, else the newest, in one request (MRs of one branch are few)."""
        api = self._client()
        params = {
            "source_branch": source_branch,
            "state": "all",
            "order_by": "created_at",
            "sort": "desc",
        }
        with self._errors(repo):
            found = [
                mr
                for mr in api.paginate(f"{self._project(repo)}/merge_requests", params)
                if mr.get("source_branch") == source_branch
                and mr.get("source_project_id") == mr.get("target_project_id")  # not from a fork
            ]
        if not found:
            return None
        opened = [mr for mr in found if mr.get("state") in ("opened", "locked")]
        return self._mr((opened or found)[0])

    def _user_ids(self, usernames: Sequence[str]) -> list[int]:
        """GitLab wants user ids; unknown names are left out."""
        ids: list[int] = []
        for name in usernames:
            name = name.lstrip("@")
            with self._users_lock:
                known = name in self._users
                user_id = self._users.get(name)
            if not known:
                users = self._client().get("/users", {"username": name})
                user_id = next(
                    (int(u["id"]) for u in users if str(u.get("username")).lower() == name.lower()),
                    None,
                )
                with self._users_lock:
                    self._users[name] = user_id
            if user_id is not None:
                ids.append(user_id)
        return ids

    @staticmethod
    def _title(spec: MRSpec) -> str:
        return f"{DRAFT_PREFIX}{spec.title}" if spec.draft else spec.title

    def create_mr(self, repo: RepoRef, spec: MRSpec) -> MergeRequest:
        api = self._client()
        data: dict[str, Any] = {
            "source_branch": spec.source_branch,
            "target_branch": spec.target_branch,
            "title": self._title(spec),
            "description": spec.body,
            "labels": ",".join(spec.labels),
        }
        with self._errors(repo):
            if spec.assignees:
                data["assignee_ids"] = self._user_ids(spec.assignees)
            if spec.reviewers:
                data["reviewer_ids"] = self._user_ids(spec.reviewers)
            last: TransientError | None = None
            for _ in api.attempts():
                try:
                    response = api.request(
                        "POST",
                        f"{self._project(repo)}/merge_requests",
                        json=data,
                        transient="raise",
                    )
                except TransientError as exc:
                    # the create may have landed before the answer got lost: look before retrying
                    last = exc
                    found = self.find_mr(repo, spec.source_branch)
                    if found is not None and found.state == "open":
                        return self._align(repo, found, spec)
                    continue
                except ApiError as exc:
                    if exc.status == 409 or "already exists" in exc.message:
                        found = self.find_mr(repo, spec.source_branch)
                        if found is not None and found.state == "open":
                            return self._align(repo, found, spec)
                    raise
                return self._mr(api.json(response))
            assert last is not None
            raise last

    def _align(self, repo: RepoRef, mr: MergeRequest, spec: MRSpec) -> MergeRequest:
        """An MR found instead of created: make it say what ``spec`` says."""
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
        data = {
            "title": self._title(spec),
            "description": spec.body,
            "labels": ",".join(spec.labels),
        }
        with self._errors(repo, mr.number):
            return self._mr(api.json(api.request("PUT", self._mr_path(repo, mr.number), json=data)))

    def get_mr(self, repo: RepoRef, number: int) -> MergeRequest:
        api = self._client()
        path = self._mr_path(repo, number)
        with self._errors(repo, number):
            data = api.get(path)
            try:
                approvals = api.get(f"{path}/approvals")
            except ApiError as exc:  # approvals unavailable on this edition or to this token
                if exc.status not in (403, 404):
                    raise
                approvals = None
        return self._mr(data, approvals)

    def comment_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> None:
        api = self._client()
        notes = f"{self._mr_path(repo, mr.number)}/notes"
        with self._errors(repo, mr.number):
            last: TransientError | None = None
            for _ in api.attempts():
                try:
                    api.request("POST", notes, json={"body": comment}, transient="raise")
                    return
                except TransientError as exc:  # posted already? a comment twice is noise
                    last = exc
                    recent = api.get(
                        notes, {"sort": "desc", "order_by": "created_at", "per_page": 20}
                    )
                    if any(n.get("body") == comment and not n.get("system") for n in recent):
                        return
            assert last is not None
            raise last

    def close_mr(self, repo: RepoRef, mr: MergeRequest, comment: str) -> MergeRequest:
        if comment:
            self.comment_mr(repo, mr, comment)
        api = self._client()
        with self._errors(repo, mr.number):
            response = api.request(
                "PUT", self._mr_path(repo, mr.number), json={"state_event": "close"}
            )
            return self._mr(api.json(response))

    def merge_mr(
        self, repo: RepoRef, mr: MergeRequest, *, sha: str, auto: bool = False
    ) -> MergeRequest:
        api = self._client()
        data: dict[str, Any] = {"sha": sha}
        if auto:  # "auto_merge" since 17.x; older versions know the first name only
            data.update(merge_when_pipeline_succeeds=True, auto_merge=True)
        where = f"{repo.name}!{mr.number}"
        try:
            response = api.request(
                "PUT", f"{self._mr_path(repo, mr.number)}/merge", json=data, auth_errors=False
            )
        except ApiError as exc:
            if exc.status == 409:
                raise ForgeError(
                    f"{where}: head moved (expected {sha[:12]}): {exc.message}"
                ) from None
            if exc.status in NOT_MERGEABLE:
                current = self.get_mr(repo, mr.number)
                if current.state == "merged":  # a retry of a merge that went through
                    return current
                why = current.merge_status or exc.message
                raise ForgeError(f"{where}: not mergeable: {why} ({exc.status})") from None
            if exc.status == 401:
                raise ForgeError(f"{where}: missing permission to merge (401)") from None
            raise repo_error(exc, repo.name, number=mr.number) from None
        return self._mr(api.json(response))

    def delete_branch(self, repo: RepoRef, branch: str) -> None:
        api = self._client()
        path = f"{self._project(repo)}/repository/branches/{quote(branch, safe='')}"
        with self._errors(repo):
            api.request("DELETE", path, ok=(404,))
