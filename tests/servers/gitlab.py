"""An in-process GitLab: the REST API v4 subset fleetchange uses, plus git smart HTTP.

:class:`GitLabServer` speaks GitLab's JSON shapes, status codes, error bodies and
offset-pagination headers (``X-Page``, ``X-Next-Page`` ..., ``Link`` with absolute
URLs), closely enough that **python-gitlab works against it unmodified**.  Groups,
projects and merge requests live in memory; every project is a real bare repository
under ``root`` that git can clone from and push to at ``{url}/{path}.git`` (Basic
auth, the token as password, any user name).  Branch tips and an MR's ``sha`` are
read live from the repository, and merges really update the target branch.

Deliberate differences from GitLab:

* one user (the token's) may do everything; no permissions or visibility checks, and
  every request needs the token (GitLab serves public data anonymously);
* merge requests only within one project (no fork sources); one pipeline per push at
  most, created by :meth:`GitLabServer.set_pipeline` or a project's ``ci_status``;
* merging fast-forwards when it can and otherwise writes a merge commit (GitLab's
  default "merge" method always writes one); ``squash`` writes a squash commit;
* every "cannot be merged now" reason (closed/merged, draft, conflicts, missing
  branch, pipeline, approvals) answers ``405 {"message": "405 Method Not Allowed"}``,
  which is what gitlab.com answers in practice (its docs list 406 for conflicts);
  ``sha`` mismatch answers 409; a target branch that moved mid-merge 422
  ``{"message": "Branch cannot be merged"}``;
* creating an MR from/to a missing branch answers GitLab's validation shape
  ``400 {"message": {"source_branch": ["does not exist"]}}``; a duplicate open MR
  (same source *and* target branch, as GitLab checks) answers 409;
* mergeability is computed synchronously; ``mergeability_delay = N`` makes the first
  N reads after each create/push report ``checking``, like GitLab's async check;
* approvals are EE-style: ``approved`` is ``approvals_left == 0``.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any, TypeVar

from .faults import FaultInjector, FaultRule
from .githttp import GitHttpBackend, is_push
from .gitrepo import BareRepo, FileContent, GitError, MergeConflictError
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
    truthy,
)

T = TypeVar("T")

DEFAULT_TOKEN = "glpat-fleetchange-test-token"
PUSH_DENIED = "GitLab: You are not allowed to push code to protected branches on this project."
ACTIVE_PIPELINE = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled"}
)
PIPELINE_STATUSES = ACTIVE_PIPELINE | {"success", "failed", "canceled", "skipped", "manual"}
DRAFT_TITLE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s+-\s|\[wip\]|wip:)", re.I)
_GIT_PATH = re.compile(
    r"/(?P<repo>.+?)\.git(?P<tail>/(?:info/refs|HEAD|git-upload-pack|git-receive-pack|objects/.+))"
)
NOT_ALLOWED = {"message": "405 Method Not Allowed"}
MR_UPDATE_PARAMS = (
    "title",
    "description",
    "target_branch",
    "state_event",
    "labels",
    "add_labels",
    "remove_labels",
    "assignee_id",
    "assignee_ids",
    "reviewer_ids",
    "remove_source_branch",
    "squash",
    "discussion_locked",
    "milestone_id",
    "allow_collaboration",
)


def _now() -> str:
    dt = datetime.now(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _not_found(what: str) -> ApiError:
    return ApiError(404, {"message": f"404 {what} Not Found"})


def _split_list(value: Any) -> list[str]:
    """GitLab list params: a comma string, a JSON list, or ``key[]`` form values."""
    if value is None:
        return []
    out: list[str] = []
    for item in value if isinstance(value, list) else [value]:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


@dataclass
class User:
    id: int
    username: str
    name: str


@dataclass
class Group:
    id: int
    path: str
    full_path: str
    parent_id: int | None
    visibility: str = "private"
    description: str = ""
    created_at: str = field(default_factory=_now)


@dataclass
class Project:
    id: int
    path: str
    namespace: Group
    repo: BareRepo
    default_branch: str
    visibility: str = "private"
    archived: bool = False
    topics: list[str] = field(default_factory=list)
    description: str = ""
    forked_from_id: int | None = None
    approvals_required: int = 0
    require_pipeline: bool = False
    ci_status: str | None = None
    protected: set[str] = field(default_factory=set)
    created_at: str = field(default_factory=_now)
    last_activity_at: str = field(default_factory=_now)
    next_iid: int = 1

    @property
    def full_path(self) -> str:
        return f"{self.namespace.full_path}/{self.path}"


PROJECT_ORDER: dict[str, Callable[[Project], Any]] = {
    "id": lambda p: p.id,
    "name": lambda p: (p.path.lower(), p.id),
    "path": lambda p: (p.path, p.id),
    "created_at": lambda p: p.id,
    "updated_at": lambda p: (p.last_activity_at, p.id),
    "last_activity_at": lambda p: (p.last_activity_at, p.id),
}


@dataclass
class Pipeline:
    id: int
    iid: int
    sha: str
    ref: str
    status: str
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)


@dataclass
class Note:
    id: int
    body: str
    author: User
    system: bool = False
    created_at: str = field(default_factory=_now)


@dataclass
class MergeRequest:
    id: int
    iid: int
    project: Project
    source_branch: str
    target_branch: str
    title: str
    author: User
    sha: str | None
    description: str = ""
    labels: list[str] = field(default_factory=list)
    assignees: list[User] = field(default_factory=list)
    reviewers: list[User] = field(default_factory=list)
    state: str = "opened"
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    merged_at: str | None = None
    closed_at: str | None = None
    merged_by: User | None = None
    closed_by: User | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    pipelines: list[Pipeline] = field(default_factory=list)
    approved_by: list[User] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    merge_when_pipeline_succeeds: bool = False
    merge_user: User | None = None
    force_remove_source_branch: bool = False
    should_remove_source_branch: bool | None = None
    squash: bool = False
    merge_error: str | None = None
    checking_reads: int = 0

    @property
    def draft(self) -> bool:
        return bool(DRAFT_TITLE.match(self.title))


ProjectRef = Project | int | str


class GitLabServer(ForgeServer):
    """GitLab REST v4 + git smart HTTP on ``http://127.0.0.1:PORT``.

    ``token`` is accepted as ``PRIVATE-TOKEN``, ``Authorization: Bearer`` or
    ``?private_token=``; for git it is the Basic-auth password.  Build state with
    :meth:`add_group`, :meth:`add_project`, :meth:`commit`, and steer merge requests
    with :meth:`set_pipeline` / :meth:`approve`.
    """

    server_header = "nginx"

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        username: str = "fleetbot",
        faults: FaultInjector | None = None,
        version: str = "17.5.1-ee",
        mergeability_delay: int = 0,
    ) -> None:
        super().__init__(root, token=token, faults=faults)
        self.version = version
        self.mergeability_delay = mergeability_delay
        # distinct id ranges so a client mixing up ids and iids gets a 404, not a wrong hit
        starts = {"user": 1, "group": 100, "project": 1000, "mr": 5000, "note": 9000}
        self._counters = {kind: itertools.count(n) for kind, n in starts.items()}
        self._counters["pipeline"] = itertools.count(20000)
        self.users: dict[str, User] = {}
        self.groups: dict[int, Group] = {}
        self.projects: dict[int, Project] = {}
        self.merge_requests: list[MergeRequest] = []
        self.user = self.add_user(username, name="Fleet Bot")
        self.git = GitHttpBackend(
            self.root, self.git_env, realm="GitLab", check=self.check_git_credentials
        )
        self.router = Router()
        self._add_routes()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    def check_git_credentials(self, username: str, password: str) -> bool:
        """git over HTTP: any user name (``oauth2`` ...) with the token as password."""
        return password == self.token

    def _next(self, kind: str) -> int:
        return next(self._counters[kind])

    # == test helpers ==================================================================
    def add_user(self, username: str, *, name: str | None = None) -> User:
        with self.lock:
            if username not in self.users:
                self.users[username] = User(self._next("user"), username, name or username)
            return self.users[username]

    def add_group(
        self, full_path: str, *, visibility: str = "private", description: str = ""
    ) -> Group:
        """The group at ``full_path`` (``platform/tools``), created with its parents."""
        with self.lock:
            found = self._find_group(full_path)
            if found is not None:
                return found
            parent_path, _, path = full_path.strip("/").rpartition("/")
            parent = self.add_group(parent_path, visibility=visibility) if parent_path else None
            group = Group(
                self._next("group"),
                path,
                full_path.strip("/"),
                parent.id if parent else None,
                visibility,
                description,
            )
            self.groups[group.id] = group
            return group

    def add_project(
        self,
        path_with_namespace: str,
        *,
        files: Mapping[str, FileContent] | None = None,
        default_branch: str = "main",
        archived: bool = False,
        topics: Sequence[str] = (),
        visibility: str = "private",
        description: str = "",
        forked_from: ProjectRef | None = None,
        approvals_required: int = 0,
        require_pipeline: bool = False,
        ci_status: str | None = None,
    ) -> Project:
        """A project with a real bare repository at ``root/<path>.git``.

        ``files=None`` commits a README on ``default_branch``; ``files={}`` leaves the
        repository empty (``empty_repo: true``, ``default_branch: null``).
        ``forked_from`` clones that project's repository.  ``require_pipeline`` is
        "pipelines must succeed"; ``ci_status`` gives every new MR head a pipeline in
        that status (e.g. "running").
        """
        namespace, _, path = path_with_namespace.strip("/").rpartition("/")
        if not namespace:
            raise ValueError("projects live in a group: use 'group/project'")
        with self.lock:
            if self._find_project(path_with_namespace) is not None:
                raise ValueError(f"project {path_with_namespace} exists")
            group = self.add_group(namespace)
            disk = self.root / f"{path_with_namespace.strip('/')}.git"
            parent = self.project(forked_from) if forked_from is not None else None
            if parent is not None:
                repo = BareRepo.clone_from(parent.repo, disk)
            else:
                content = {"README.md": f"# {path}\n"} if files is None else files
                repo = BareRepo.init(disk, self.git_env, default_branch=default_branch)
                if content:
                    repo.commit(default_branch, content, "Initial commit")
            project = Project(
                self._next("project"),
                path,
                group,
                repo,
                default_branch,
                visibility=visibility,
                archived=archived,
                topics=list(topics),
                description=description,
                forked_from_id=parent.id if parent else None,
                approvals_required=approvals_required,
                require_pipeline=require_pipeline,
                ci_status=ci_status,
            )
            self.projects[project.id] = project
            return project

    def project(self, ref: ProjectRef) -> Project:
        """A project by object, numeric id or ``path_with_namespace``."""
        with self.lock:
            if isinstance(ref, Project):
                return ref
            found = self.projects.get(ref) if isinstance(ref, int) else self._find_project(ref)
            if found is None:
                raise KeyError(f"no project {ref!r}")
            return found

    def commit(
        self,
        project: ProjectRef,
        branch: str,
        files: Mapping[str, FileContent],
        message: str = "Update files",
        *,
        start_point: str | None = None,
    ) -> str:
        """Commit on ``branch`` (created from ``start_point``, default the default
        branch, when missing; a root commit in an empty repository), as if someone
        pushed; returns the new SHA."""
        p = self.project(project)
        if start_point is None and p.repo.branch_sha(p.default_branch):
            start_point = p.default_branch
        sha = p.repo.commit(branch, files, message, start_point=start_point)
        with self.lock:
            p.last_activity_at = _now()
        return sha

    def branch_sha(self, project: ProjectRef, branch: str) -> str | None:
        return self.project(project).repo.branch_sha(branch)

    def protect_branch(self, project: ProjectRef, branch: str) -> None:
        """Pushes to ``branch`` now fail (pre-receive hook); merges through the API work."""
        with self.lock:
            p = self.project(project)
            p.protected.add(branch)
            p.repo.set_protected(p.protected, PUSH_DENIED)

    def set_archived(self, project: ProjectRef, archived: bool = True) -> None:
        with self.lock:
            self.project(project).archived = archived

    def mr(self, project: ProjectRef, iid: int) -> MergeRequest:
        """The live MergeRequest object (mutate only under ``server.lock``)."""
        with self.lock:
            p = self.project(project)
            for mr in self.merge_requests:
                if mr.project is p and mr.iid == iid:
                    return mr
            raise KeyError(f"no merge request !{iid} in {p.full_path}")

    def mr_json(self, project: ProjectRef, iid: int) -> dict[str, Any]:
        """What ``GET /projects/:id/merge_requests/:iid`` would answer (no read consumed)."""
        with self.lock:
            mr = self.mr(project, iid)
            branches = mr.project.repo.branches()
            self._sync(mr, branches)
            return self._mr_json(mr, branches, detailed=True, consume=False)

    def set_pipeline(
        self, project: ProjectRef, iid: int, status: str, *, sha: str | None = None
    ) -> dict[str, Any]:
        """Set the status of the MR's head pipeline (created if needed) and let a pending
        auto-merge proceed or abort, as GitLab does when the pipeline finishes."""
        if status not in PIPELINE_STATUSES:
            raise ValueError(f"unknown pipeline status {status!r}")
        with self.lock:
            mr = self.mr(project, iid)
            self._sync(mr, mr.project.repo.branches())
            target_sha = sha or mr.sha or ""
            pipeline = next((pl for pl in reversed(mr.pipelines) if pl.sha == target_sha), None)
            if pipeline is None:
                pipeline = self._new_pipeline(mr, status, target_sha)
            pipeline.status, pipeline.updated_at = status, _now()
            self._try_auto_merge(mr)
            return self._pipeline_json(mr.project, pipeline)

    def approve(self, project: ProjectRef, iid: int, username: str = "reviewer") -> None:
        """Record an approval by ``username`` (created if unknown)."""
        with self.lock:
            mr = self.mr(project, iid)
            user = self.add_user(username)
            if user not in mr.approved_by:
                mr.approved_by.append(user)
                self._system_note(mr, "approved this merge request", user)
            self._try_auto_merge(mr)

    # == internals: lookups ============================================================
    def _find_group(self, key: str) -> Group | None:
        if key.isdigit():
            return self.groups.get(int(key))
        key = key.strip("/").lower()
        return next((g for g in self.groups.values() if g.full_path.lower() == key), None)

    def _find_project(self, key: str) -> Project | None:
        if key.isdigit():
            return self.projects.get(int(key))
        key = key.strip("/").lower()
        return next((p for p in self.projects.values() if p.full_path.lower() == key), None)

    def _group(self, key: str) -> Group:
        group = self._find_group(key)
        if group is None:
            raise _not_found("Group")
        return group

    def _project(self, key: str) -> Project:
        project = self._find_project(key)
        if project is None:
            raise _not_found("Project")
        return project

    def _mr(self, params: Mapping[str, str]) -> MergeRequest:
        p = self._project(params["id"])
        iid = int(params["iid"])
        for mr in self.merge_requests:
            if mr.project is p and mr.iid == iid:
                return mr
        raise _not_found("Merge Request")

    def _users_by_id(self, value: Any) -> list[User]:
        by_id = {u.id: u for u in self.users.values()}
        ids = [int(v) for v in _split_list(value) if v.isdigit()]
        return [by_id[i] for i in ids if i in by_id]

    @staticmethod
    def _duplicate(other: MergeRequest) -> ApiError:
        message = f"Another open merge request already exists for this source branch: !{other.iid}"
        return ApiError(409, {"message": [message]})

    @staticmethod
    def _params(req: Request) -> dict[str, Any]:
        try:
            return req.params()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, {"message": f"400 Bad request - {exc}"}) from None

    # == internals: HTTP ===============================================================
    def route_git(self, req: Request) -> tuple[str, str] | None:
        match = _GIT_PATH.fullmatch(req.path)
        return (match["repo"], match["tail"]) if match else None

    def handle_git(self, req: Request, repo: str, tail: str) -> Response:
        auth = self.git.authenticate(req)
        if isinstance(auth, Response):
            return auth
        with self.lock:
            project = self._find_project(repo)
            if project is None:
                return Response.text(
                    404,
                    "The project you were looking for could not be found or you don't have "
                    "permission to view it.\n",
                )
            if is_push(req) and project.archived:
                return Response.text(403, "You are not allowed to push code to this project.\n")
            path_info = f"/{project.full_path}.git{tail}"
        return self.git.handle(req, path_info, user=auth)

    def _authenticated(self, req: Request) -> bool:
        token = req.header("PRIVATE-TOKEN") or req.arg("private_token")
        auth = req.header("Authorization") or ""
        if token is None and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        return token == self.token

    def handle_api(self, req: Request) -> Response:
        if not req.raw_path.startswith("/api/v4/"):
            return Response.text(
                404,
                "<html><body>404 Not Found</body></html>\n",
                content_type="text/html; charset=utf-8",
            )
        if not self._authenticated(req):
            raise ApiError(401, {"message": "401 Unauthorized"})
        found = self.router.resolve(req.method, req.raw_path.removeprefix("/api/v4"))
        if isinstance(found, int):
            raise ApiError(found, {"error": "404 Not Found" if found == 404 else "405 Not Allowed"})
        handler, params = found
        with self.lock:
            return handler(req, params)

    def render_fault(self, rule: FaultRule, req: Request) -> Response:
        if rule.kind in ("rate_limit", "secondary_rate_limit"):
            reset = int(time.time()) + (rule.retry_after or 0)
            headers = {
                "RateLimit-Name": "throttle_authenticated_api",
                "RateLimit-Limit": "2000",
                "RateLimit-Observed": "2001",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": str(reset),
                "RateLimit-ResetTime": formatdate(reset, usegmt=True),
            }
            if rule.retry_after is not None:
                headers["Retry-After"] = str(rule.retry_after)
            headers.update(rule.headers)
            body = "Retry later\n" if rule.body is None else rule.body
            return Response.payload(rule.status or 429, body, headers)
        status = rule.status or 500
        if rule.body is not None:
            return Response.payload(status, rule.body, rule.headers)
        if status in (502, 503, 504):  # nginx/workhorse pages, not JSON
            page = (
                f"<html><body><h1>{status} Bad Gateway</h1>GitLab is not responding.</body></html>"
            )
            resp = Response.text(status, page, content_type="text/html")
        else:
            resp = Response.json(status, {"message": f"{status} Internal Server Error"})
        for name, value in rule.headers.items():
            resp.set_header(name, value)
        return resp

    def decorate(self, req: Request, response: Response, *, git: bool) -> None:
        if git:
            return
        response.default_header("X-Request-Id", uuid.uuid4().hex[:26].upper())
        response.default_header("Cache-Control", "max-age=0, private, must-revalidate")
        response.default_header("Vary", "Origin")
        response.default_header("X-Content-Type-Options", "nosniff")

    def _paginate(self, req: Request, items: Sequence[T], render: Callable[[T], Any]) -> Response:
        page = parse_int(req.arg("page", "1"))
        per_page = parse_int(req.arg("per_page", "20"))
        if page is None:
            raise ApiError(400, {"error": "page is invalid"})
        if per_page is None:
            raise ApiError(400, {"error": "per_page is invalid"})
        per_page = 20 if per_page < 1 else min(per_page, 100)
        window = PageWindow(max(page, 1), per_page, len(items))
        links = []
        if window.prev_page:
            links.append(("prev", page_url(self.url, req, window.prev_page, per_page)))
        if window.next_page:
            links.append(("next", page_url(self.url, req, window.next_page, per_page)))
        links.append(("first", page_url(self.url, req, 1, per_page)))
        links.append(("last", page_url(self.url, req, window.total_pages, per_page)))
        headers = {
            "X-Page": str(window.page),
            "X-Per-Page": str(per_page),
            "X-Next-Page": str(window.next_page or ""),
            "X-Prev-Page": str(window.prev_page or ""),
            "X-Total": str(window.total),
            "X-Total-Pages": str(window.total_pages),
            "Link": format_links(links),
        }
        return Response.json(200, [render(item) for item in window.slice(items)], headers)

    def _add_routes(self) -> None:
        pid = r"/projects/(?P<id>[^/]+)"
        mr = pid + r"/merge_requests/(?P<iid>\d+)"
        add = self.router.add
        add("GET", r"/version", self._get_version)
        add("GET", r"/user", self._get_user)
        add("GET", r"/groups/(?P<gid>[^/]+)", self._get_group)
        add("GET", r"/groups/(?P<gid>[^/]+)/projects", self._list_group_projects)
        add("GET", r"/groups/(?P<gid>[^/]+)/subgroups", self._list_subgroups)
        add("GET", r"/groups/(?P<gid>[^/]+)/descendant_groups", self._list_subgroups)
        add("GET", r"/projects", self._list_projects)
        add("GET", pid, self._get_project)
        add("GET", pid + r"/repository/branches", self._list_branches)
        add("POST", pid + r"/repository/branches", self._create_branch)
        add("GET", pid + r"/repository/branches/(?P<branch>.+)", self._get_branch)
        add("DELETE", pid + r"/repository/branches/(?P<branch>.+)", self._delete_branch)
        add("GET", pid + r"/merge_requests", self._list_mrs)
        add("POST", pid + r"/merge_requests", self._create_mr)
        add("GET", mr, self._get_mr)
        add("PUT", mr, self._update_mr)
        add("PUT", mr + r"/merge", self._merge_mr)
        add("GET", mr + r"/approvals", self._get_approvals)
        add("POST", mr + r"/approve", self._approve_mr)
        add("POST", mr + r"/unapprove", self._unapprove_mr)
        add("GET", mr + r"/notes", self._list_notes)
        add("POST", mr + r"/notes", self._create_note)
        add("GET", mr + r"/pipelines", self._list_mr_pipelines)

    # == JSON shapes ===================================================================
    def _user_json(self, user: User | None) -> dict[str, Any] | None:
        if user is None:
            return None
        return {
            "id": user.id,
            "username": user.username,
            "name": user.name,
            "state": "active",
            "locked": False,
            "avatar_url": None,
            "web_url": f"{self.url}/{user.username}",
        }

    def _group_json(self, g: Group) -> dict[str, Any]:
        full_name = " / ".join(g.full_path.split("/"))
        return {
            "id": g.id,
            "web_url": f"{self.url}/groups/{g.full_path}",
            "name": g.path,
            "path": g.path,
            "description": g.description,
            "visibility": g.visibility,
            "full_name": full_name,
            "full_path": g.full_path,
            "parent_id": g.parent_id,
            "created_at": g.created_at,
            "avatar_url": None,
        }

    def _namespace_json(self, g: Group) -> dict[str, Any]:
        return {
            "id": g.id,
            "name": g.path,
            "path": g.path,
            "kind": "group",
            "full_path": g.full_path,
            "parent_id": g.parent_id,
            "avatar_url": None,
            "web_url": f"{self.url}/groups/{g.full_path}",
        }

    @staticmethod
    def _default_branch(p: Project, branches: Mapping[str, str]) -> str | None:
        if not branches:
            return None
        if p.default_branch in branches:
            return p.default_branch
        head = p.repo.head_branch()
        return head if head in branches else sorted(branches)[0]

    def _project_json(self, p: Project, *, simple: bool = False) -> dict[str, Any]:
        branches = p.repo.branches()
        data: dict[str, Any] = {
            "id": p.id,
            "description": p.description or None,
            "name": p.path,
            "name_with_namespace": " / ".join(p.full_path.split("/")),
            "path": p.path,
            "path_with_namespace": p.full_path,
            "created_at": p.created_at,
            "default_branch": self._default_branch(p, branches),
            "tag_list": list(p.topics),
            "topics": list(p.topics),
            "ssh_url_to_repo": f"git@127.0.0.1:{p.full_path}.git",
            "http_url_to_repo": f"{self.url}/{p.full_path}.git",
            "web_url": f"{self.url}/{p.full_path}",
            "readme_url": None,
            "forks_count": sum(1 for o in self.projects.values() if o.forked_from_id == p.id),
            "avatar_url": None,
            "star_count": 0,
            "last_activity_at": p.last_activity_at,
            "namespace": self._namespace_json(p.namespace),
        }
        if simple:  # like GitLab, ?simple=true leaves out archived, empty_repo ...
            return data
        data.update(
            {
                "empty_repo": not branches,
                "archived": p.archived,
                "visibility": p.visibility,
                "issues_enabled": True,
                "merge_requests_enabled": True,
                "merge_method": "merge",
                "squash_option": "default_off",
                "only_allow_merge_if_pipeline_succeeds": p.require_pipeline,
                "remove_source_branch_after_merge": True,
                "approvals_before_merge": p.approvals_required,
                "permissions": {
                    "project_access": {"access_level": 40, "notification_level": 3},
                    "group_access": None,
                },
            }
        )
        if p.forked_from_id is not None:
            parent = self.projects[p.forked_from_id]
            data["forked_from_project"] = self._project_json(parent, simple=True)
        return data

    def _branch_json(self, p: Project, name: str, sha: str, default: str | None) -> dict[str, Any]:
        info = p.repo.commit_info(sha)
        commit = {**info, "short_id": sha[:8], "created_at": info["committed_date"]}
        commit["web_url"] = f"{self.url}/{p.full_path}/-/commit/{sha}"
        default_sha = p.repo.branch_sha(default) if default else None
        return {
            "name": name,
            "commit": commit,
            "merged": bool(
                default_sha and name != default and p.repo.is_ancestor(sha, default_sha)
            ),
            "protected": name in p.protected,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "default": name == default,
            "web_url": f"{self.url}/{p.full_path}/-/tree/{name}",
        }

    def _pipeline_json(self, p: Project, pl: Pipeline, *, detailed: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": pl.id,
            "iid": pl.iid,
            "project_id": p.id,
            "sha": pl.sha,
            "ref": pl.ref,
            "status": pl.status,
            "source": "merge_request_event",
            "created_at": pl.created_at,
            "updated_at": pl.updated_at,
            "web_url": f"{self.url}/{p.full_path}/-/pipelines/{pl.id}",
        }
        if detailed:
            data["detailed_status"] = {
                "icon": f"status_{pl.status}",
                "text": pl.status,
                "label": pl.status,
                "group": pl.status,
            }
            data.update(tag=False, yaml_errors=None, coverage=None, user=self._user_json(self.user))
        return data

    def _note_json(self, mr: MergeRequest, note: Note) -> dict[str, Any]:
        return {
            "id": note.id,
            "type": None,
            "body": note.body,
            "attachment": None,
            "author": self._user_json(note.author),
            "created_at": note.created_at,
            "updated_at": note.created_at,
            "system": note.system,
            "noteable_id": mr.id,
            "noteable_type": "MergeRequest",
            "noteable_iid": mr.iid,
            "project_id": mr.project.id,
            "resolvable": False,
            "confidential": False,
            "internal": False,
            "commands_changes": {},
        }

    def _head_pipeline(self, mr: MergeRequest) -> Pipeline | None:
        return next((pl for pl in reversed(mr.pipelines) if pl.sha == mr.sha), None)

    def _approvals_left(self, mr: MergeRequest) -> int:
        return max(0, mr.project.approvals_required - len(mr.approved_by))

    def _merge_state(
        self, mr: MergeRequest, branches: Mapping[str, str], *, consume: bool
    ) -> tuple[str, str, bool]:
        """``(detailed_merge_status, merge_status, has_conflicts)``."""
        if mr.state != "opened":
            return "not_open", "can_be_merged", False
        if mr.checking_reads > 0 and consume:
            mr.checking_reads -= 1
            return "checking", "checking", False
        src, tgt = branches.get(mr.source_branch), branches.get(mr.target_branch)
        if src is None or tgt is None:
            return "broken_status", "cannot_be_merged", False
        conflicts = mr.project.repo.has_conflicts(tgt, src)
        status = "cannot_be_merged" if conflicts else "can_be_merged"
        if mr.draft:
            return "draft_status", status, conflicts
        if conflicts:
            return "conflict", status, True
        pipeline = self._head_pipeline(mr)
        if mr.project.require_pipeline:
            if pipeline is not None and pipeline.status in ACTIVE_PIPELINE:
                return "ci_still_running", status, False
            if pipeline is None or pipeline.status != "success":
                return "ci_must_pass", status, False
        if self._approvals_left(mr) > 0:
            return "not_approved", status, False
        return "mergeable", status, False

    def _mr_json(
        self,
        mr: MergeRequest,
        branches: Mapping[str, str],
        *,
        detailed: bool,
        consume: bool = True,
    ) -> dict[str, Any]:
        p = mr.project
        detailed_status, merge_status, conflicts = self._merge_state(mr, branches, consume=consume)
        ref = f"!{mr.iid}"
        data: dict[str, Any] = {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": p.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "merged_by": self._user_json(mr.merged_by),
            "merge_user": self._user_json(mr.merge_user or mr.merged_by),
            "merged_at": mr.merged_at,
            "closed_by": self._user_json(mr.closed_by),
            "closed_at": mr.closed_at,
            "target_branch": mr.target_branch,
            "source_branch": mr.source_branch,
            "user_notes_count": sum(1 for n in mr.notes if not n.system),
            "upvotes": 0,
            "downvotes": 0,
            "author": self._user_json(mr.author),
            "assignees": [self._user_json(u) for u in mr.assignees],
            "assignee": self._user_json(mr.assignees[0]) if mr.assignees else None,
            "reviewers": [self._user_json(u) for u in mr.reviewers],
            "source_project_id": p.id,
            "target_project_id": p.id,
            "labels": sorted(mr.labels),
            "draft": mr.draft,
            "work_in_progress": mr.draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": mr.merge_when_pipeline_succeeds,
            "merge_status": merge_status,
            "detailed_merge_status": detailed_status,
            "sha": mr.sha,
            "merge_commit_sha": mr.merge_commit_sha,
            "squash_commit_sha": mr.squash_commit_sha,
            "discussion_locked": None,
            "should_remove_source_branch": mr.should_remove_source_branch,
            "force_remove_source_branch": mr.force_remove_source_branch,
            "prepared_at": mr.created_at,
            "reference": ref,
            "references": {"short": ref, "relative": ref, "full": f"{p.full_path}{ref}"},
            "web_url": f"{self.url}/{p.full_path}/-/merge_requests/{mr.iid}",
            "time_stats": {
                "time_estimate": 0,
                "total_time_spent": 0,
                "human_time_estimate": None,
                "human_total_time_spent": None,
            },
            "squash": mr.squash,
            "squash_on_merge": mr.squash,
            "task_completion_status": {"count": 0, "completed_count": 0},
            "has_conflicts": conflicts,
            "blocking_discussions_resolved": True,
            "approvals_before_merge": None,
        }
        if detailed:  # GET one / create / update / merge; the list endpoint leaves these out
            pipeline = self._head_pipeline(mr)
            target_sha = branches.get(mr.target_branch)
            data.update(
                {
                    "subscribed": True,
                    "changes_count": None,
                    "latest_build_started_at": None,
                    "latest_build_finished_at": None,
                    "first_deployed_to_production_at": None,
                    "pipeline": self._pipeline_json(p, pipeline) if pipeline else None,
                    "head_pipeline": (
                        self._pipeline_json(p, pipeline, detailed=True) if pipeline else None
                    ),
                    "diff_refs": {
                        "base_sha": target_sha,
                        "head_sha": mr.sha,
                        "start_sha": target_sha,
                    },
                    "merge_error": mr.merge_error,
                    "first_contribution": False,
                    "user": {"can_merge": True},
                }
            )
        return data

    def _approvals_json(self, mr: MergeRequest) -> dict[str, Any]:
        left = self._approvals_left(mr)
        return {
            "id": mr.id,
            "iid": mr.iid,
            "project_id": mr.project.id,
            "title": mr.title,
            "description": mr.description,
            "state": mr.state,
            "created_at": mr.created_at,
            "updated_at": mr.updated_at,
            "merge_status": "can_be_merged",
            "approved": left == 0,
            "approvals_required": mr.project.approvals_required,
            "approvals_left": left,
            "require_password_to_approve": False,
            "approved_by": [{"user": self._user_json(u)} for u in mr.approved_by],
            "suggested_approvers": [],
            "approvers": [],
            "approver_groups": [],
            "user_has_approved": self.user in mr.approved_by,
            "user_can_approve": self.user not in mr.approved_by,
            "approval_rules_left": [],
            "has_approval_rules": mr.project.approvals_required > 0,
            "merge_request_approvers_available": True,
            "multiple_approval_rules_available": True,
        }

    # == internals: MR state ===========================================================
    def _new_pipeline(self, mr: MergeRequest, status: str, sha: str | None = None) -> Pipeline:
        iid = 1 + sum(len(o.pipelines) for o in self.merge_requests if o.project is mr.project)
        pipeline = Pipeline(
            self._next("pipeline"), iid, sha or mr.sha or "", mr.source_branch, status
        )
        mr.pipelines.append(pipeline)
        return pipeline

    def _sync(self, mr: MergeRequest, branches: Mapping[str, str]) -> None:
        """Follow pushes to the source branch: new sha, fresh mergeability, new pipeline."""
        if mr.state != "opened":
            return
        sha = branches.get(mr.source_branch)
        if sha is None or sha == mr.sha:
            return
        mr.sha = sha
        mr.updated_at = _now()
        mr.checking_reads = self.mergeability_delay
        if mr.project.ci_status:
            self._new_pipeline(mr, mr.project.ci_status)

    def _system_note(self, mr: MergeRequest, body: str, author: User | None = None) -> None:
        mr.notes.append(Note(self._next("note"), body, author or self.user, system=True))

    def _perform_merge(self, mr: MergeRequest, user: User, message: str | None = None) -> None:
        p = mr.project
        if message is None:
            message = (
                f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
                f"See merge request {p.full_path}!{mr.iid}"
            )
        try:
            new, how = p.repo.merge(
                mr.target_branch, mr.sha or "", message, "squash" if mr.squash else "merge"
            )
        except MergeConflictError:
            raise ApiError(405, NOT_ALLOWED) from None
        except GitError:
            raise ApiError(422, {"message": "Branch cannot be merged"}) from None
        now = _now()
        mr.state, mr.merged_at, mr.updated_at, mr.merged_by = "merged", now, now, user
        mr.merge_commit_sha = new if how == "merge" else None
        mr.squash_commit_sha = new if how == "squash" else None
        p.last_activity_at = now
        self._system_note(mr, "merged", user)
        remove = mr.should_remove_source_branch or mr.force_remove_source_branch
        if remove and mr.source_branch not in p.protected:
            p.repo.delete_branch(mr.source_branch)

    def _try_auto_merge(self, mr: MergeRequest) -> None:
        if not mr.merge_when_pipeline_succeeds or mr.state != "opened":
            return
        branches = mr.project.repo.branches()
        self._sync(mr, branches)
        pipeline = self._head_pipeline(mr)
        if pipeline is not None and pipeline.status in ("failed", "canceled"):
            mr.merge_when_pipeline_succeeds = False
            mr.merge_error = "Pipeline failed"
            self._system_note(mr, "aborted the automatic merge because the pipeline failed")
            return
        if pipeline is not None and pipeline.status in ACTIVE_PIPELINE:
            return
        state = self._merge_state(mr, branches, consume=False)[0]
        if state == "mergeable":
            try:
                self._perform_merge(mr, mr.merge_user or self.user)
            except ApiError:  # the target moved under us: GitLab drops the auto-merge
                state = "conflict"
        if state in ("conflict", "broken_status", "draft_status"):
            mr.merge_when_pipeline_succeeds = False
            mr.merge_error = "Merge request is not mergeable"
            self._system_note(mr, "aborted the automatic merge because it cannot be merged")

    # == handlers: users, groups, projects =============================================
    def _get_version(self, req: Request, m: dict[str, str]) -> Response:
        return Response.json(
            200,
            {
                "version": self.version,
                "revision": "6e3ee6d1e24",
                "kas": {"enabled": False, "externalUrl": None, "version": None},
                "enterprise": self.version.endswith("-ee"),
            },
        )

    def _get_user(self, req: Request, m: dict[str, str]) -> Response:
        data = self._user_json(self.user) or {}
        data.update(
            email=f"{self.user.username}@example.invalid",
            is_admin=False,
            bot=False,
            created_at="2023-11-14T22:13:20.000Z",
            can_create_group=True,
            can_create_project=True,
        )
        return Response.json(200, data)

    def _get_group(self, req: Request, m: dict[str, str]) -> Response:
        return Response.json(200, self._group_json(self._group(m["gid"])))

    def _list_subgroups(self, req: Request, m: dict[str, str]) -> Response:
        group = self._group(m["gid"])
        if req.raw_path.endswith("/subgroups"):
            found = [g for g in self.groups.values() if g.parent_id == group.id]
        else:
            prefix = group.full_path + "/"
            found = [g for g in self.groups.values() if g.full_path.startswith(prefix)]
        return self._paginate(req, sorted(found, key=lambda g: g.path), self._group_json)

    def _list_group_projects(self, req: Request, m: dict[str, str]) -> Response:
        group = self._group(m["gid"])
        deep = truthy(req.arg("include_subgroups"))
        prefix = group.full_path + "/"
        projects = [
            p
            for p in self.projects.values()
            if p.namespace is group or (deep and p.namespace.full_path.startswith(prefix))
        ]
        return self._project_list(req, projects)

    def _list_projects(self, req: Request, m: dict[str, str]) -> Response:
        return self._project_list(req, list(self.projects.values()))

    def _project_list(self, req: Request, projects: list[Project]) -> Response:
        if req.arg("archived") is not None:
            archived = truthy(req.arg("archived"))
            projects = [p for p in projects if p.archived == archived]
        search = (req.arg("search") or "").lower()
        if search:
            projects = [p for p in projects if search in p.path.lower()]
        topics = _split_list(req.arg("topic"))
        projects = [p for p in projects if all(t in p.topics for t in topics)]
        if req.arg("visibility"):
            projects = [p for p in projects if p.visibility == req.arg("visibility")]
        order_by, sort = req.arg("order_by", "created_at") or "", req.arg("sort", "desc")
        if order_by not in PROJECT_ORDER:
            raise ApiError(400, {"error": "order_by does not have a valid value"})
        if sort not in ("asc", "desc"):
            raise ApiError(400, {"error": "sort does not have a valid value"})
        projects.sort(key=PROJECT_ORDER[order_by], reverse=sort == "desc")
        simple = truthy(req.arg("simple"))
        return self._paginate(req, projects, lambda p: self._project_json(p, simple=simple))

    def _get_project(self, req: Request, m: dict[str, str]) -> Response:
        return Response.json(200, self._project_json(self._project(m["id"])))

    # == handlers: branches ============================================================
    def _list_branches(self, req: Request, m: dict[str, str]) -> Response:
        p = self._project(m["id"])
        branches = p.repo.branches()
        default = self._default_branch(p, branches)
        search = req.arg("search") or ""
        names = sorted(name for name in branches if search in name)
        return self._paginate(
            req, names, lambda name: self._branch_json(p, name, branches[name], default)
        )

    def _create_branch(self, req: Request, m: dict[str, str]) -> Response:
        p = self._project(m["id"])
        params = self._params(req)
        branch, ref = str(params.get("branch") or ""), str(params.get("ref") or "")
        if not branch or not ref:
            missing = [k for k in ("branch", "ref") if not params.get(k)]
            raise ApiError(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        if p.repo.branch_sha(branch):
            raise ApiError(400, {"message": "Branch already exists"})
        try:
            sha = p.repo.create_branch(branch, ref)
        except GitError:
            raise ApiError(400, {"message": "Invalid reference name: " + ref}) from None
        default = self._default_branch(p, p.repo.branches())
        return Response.json(201, self._branch_json(p, branch, sha, default))

    def _get_branch(self, req: Request, m: dict[str, str]) -> Response:
        p = self._project(m["id"])
        branches = p.repo.branches()
        if m["branch"] not in branches:
            raise _not_found("Branch")
        default = self._default_branch(p, branches)
        return Response.json(200, self._branch_json(p, m["branch"], branches[m["branch"]], default))

    def _delete_branch(self, req: Request, m: dict[str, str]) -> Response:
        p = self._project(m["id"])
        branches = p.repo.branches()
        if m["branch"] not in branches:
            raise _not_found("Branch")
        if m["branch"] == self._default_branch(p, branches):
            raise ApiError(405, {"message": "The default branch of a project cannot be deleted."})
        if m["branch"] in p.protected:
            raise ApiError(403, {"message": "403 Forbidden"})
        p.repo.delete_branch(m["branch"])
        return Response.empty(204)

    # == handlers: merge requests ======================================================
    def _list_mrs(self, req: Request, m: dict[str, str]) -> Response:
        p = self._project(m["id"])
        state = req.arg("state", "all")
        if state not in ("opened", "closed", "locked", "merged", "all"):
            raise ApiError(400, {"error": "state does not have a valid value"})
        branches = p.repo.branches()
        mrs = [mr for mr in self.merge_requests if mr.project is p]
        for mr in mrs:
            self._sync(mr, branches)
        if state != "all":
            mrs = [mr for mr in mrs if mr.state == state]
        for key in ("source_branch", "target_branch"):
            if req.arg(key):
                mrs = [mr for mr in mrs if getattr(mr, key) == req.arg(key)]
        labels = _split_list(req.arg("labels"))
        mrs = [mr for mr in mrs if all(label in mr.labels for label in labels)]
        iids = {int(i) for i in req.query.get("iids[]", []) if i.isdigit()}
        if iids:
            mrs = [mr for mr in mrs if mr.iid in iids]
        if req.arg("search"):
            needle = (req.arg("search") or "").lower()
            mrs = [mr for mr in mrs if needle in mr.title.lower() or needle in mr.description]
        order_by, sort = req.arg("order_by", "created_at"), req.arg("sort", "desc")
        if order_by not in ("created_at", "updated_at", "title") or sort not in ("asc", "desc"):
            raise ApiError(400, {"error": "order_by does not have a valid value"})
        if order_by == "title":
            mrs.sort(key=lambda mr: (mr.title, mr.id), reverse=sort == "desc")
        elif order_by == "updated_at":
            mrs.sort(key=lambda mr: (mr.updated_at, mr.id), reverse=sort == "desc")
        else:
            mrs.sort(key=lambda mr: mr.id, reverse=sort == "desc")
        return self._paginate(req, mrs, lambda mr: self._mr_json(mr, branches, detailed=False))

    def _create_mr(self, req: Request, m: dict[str, str]) -> Response:
        p = self._project(m["id"])
        params = self._params(req)
        missing = [k for k in ("source_branch", "target_branch", "title") if not params.get(k)]
        if missing:
            raise ApiError(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        if p.archived:
            raise ApiError(403, {"message": "403 Forbidden"})
        source, target = str(params["source_branch"]), str(params["target_branch"])
        if source == target:
            raise ApiError(
                422, {"message": ["You can't use same project/branch for source and target"]}
            )
        branches = p.repo.branches()
        errors = {
            k: ["does not exist"]
            for k, b in [("source_branch", source), ("target_branch", target)]
            if b not in branches
        }
        if errors:
            raise ApiError(400, {"message": errors})
        for other in self.merge_requests:
            if (
                other.project is p
                and other.state == "opened"
                and (other.source_branch, other.target_branch) == (source, target)
            ):
                raise self._duplicate(other)
        mr = MergeRequest(
            self._next("mr"),
            p.next_iid,
            p,
            source,
            target,
            str(params["title"]),
            self.user,
            branches[source],
            description=str(params.get("description") or ""),
            labels=_split_list(params.get("labels")),
            assignees=self._users_by_id(params.get("assignee_ids", params.get("assignee_id"))),
            reviewers=self._users_by_id(params.get("reviewer_ids")),
            force_remove_source_branch=truthy(params.get("remove_source_branch")),
            squash=truthy(params.get("squash")),
            checking_reads=self.mergeability_delay,
        )
        p.next_iid += 1
        self.merge_requests.append(mr)
        if p.ci_status:
            self._new_pipeline(mr, p.ci_status)
        return Response.json(201, self._mr_json(mr, branches, detailed=True, consume=False))

    def _get_mr(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        branches = mr.project.repo.branches()
        self._sync(mr, branches)
        return Response.json(200, self._mr_json(mr, branches, detailed=True))

    def _update_mr(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        p = mr.project
        params = self._params(req)
        if not any(k in params for k in MR_UPDATE_PARAMS):
            raise ApiError(
                400,
                {
                    "error": ", ".join(MR_UPDATE_PARAMS) + " are missing, "
                    "at least one parameter must be provided"
                },
            )
        branches = p.repo.branches()
        self._sync(mr, branches)
        event = params.get("state_event")
        if event not in (None, "close", "reopen"):
            raise ApiError(400, {"error": "state_event does not have a valid value"})
        target = params.get("target_branch")
        if target is not None and str(target) not in branches:
            raise ApiError(400, {"message": {"target_branch": ["does not exist"]}})
        if event == "reopen" and mr.state == "closed":
            for other in self.merge_requests:
                if (
                    other is not mr
                    and other.project is p
                    and other.state == "opened"
                    and (other.source_branch, other.target_branch)
                    == (mr.source_branch, str(target or mr.target_branch))
                ):
                    raise self._duplicate(other)
        if "title" in params:
            mr.title = str(params["title"])
        if "description" in params:
            mr.description = str(params["description"] or "")
        if target is not None:
            mr.target_branch = str(target)
        if "labels" in params:
            mr.labels = _split_list(params["labels"])
        mr.labels += [x for x in _split_list(params.get("add_labels")) if x not in mr.labels]
        removed = _split_list(params.get("remove_labels"))
        mr.labels = [x for x in mr.labels if x not in removed]
        if "assignee_ids" in params or "assignee_id" in params:
            mr.assignees = self._users_by_id(params.get("assignee_ids", params.get("assignee_id")))
        if "reviewer_ids" in params:
            mr.reviewers = self._users_by_id(params["reviewer_ids"])
        if "remove_source_branch" in params:
            mr.force_remove_source_branch = truthy(params["remove_source_branch"])
        if "squash" in params:
            mr.squash = truthy(params["squash"])
        now = _now()
        if event == "close" and mr.state == "opened":
            mr.state, mr.closed_at, mr.closed_by = "closed", now, self.user
            mr.merge_when_pipeline_succeeds = False
            self._system_note(mr, "closed")
        elif event == "reopen" and mr.state == "closed":
            mr.state, mr.closed_at, mr.closed_by = "opened", None, None
            mr.sha = None  # re-read from the branch
            self._sync(mr, branches)
            self._system_note(mr, "reopened")
        mr.updated_at = now
        return Response.json(200, self._mr_json(mr, branches, detailed=True, consume=False))

    def _merge_mr(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        params = self._params(req)
        branches = mr.project.repo.branches()
        self._sync(mr, branches)
        if mr.state != "opened":
            raise ApiError(405, NOT_ALLOWED)
        sha = params.get("sha")
        if sha and sha != mr.sha:
            raise ApiError(409, {"message": f"SHA does not match HEAD of source branch: {mr.sha}"})
        if "squash" in params:
            mr.squash = truthy(params["squash"])
        if "should_remove_source_branch" in params:
            mr.should_remove_source_branch = truthy(params["should_remove_source_branch"])
        auto = truthy(params.get("merge_when_pipeline_succeeds")) or truthy(
            params.get("auto_merge")
        )
        pipeline = self._head_pipeline(mr)
        state = self._merge_state(mr, branches, consume=False)[0]
        pipeline_running = pipeline is not None and pipeline.status in ACTIVE_PIPELINE
        blocked = state in ("conflict", "draft_status", "broken_status")
        if auto and not blocked and (pipeline_running or state == "not_approved"):
            if not mr.merge_when_pipeline_succeeds:
                mr.merge_when_pipeline_succeeds, mr.merge_user = True, self.user
                self._system_note(
                    mr, f"enabled an automatic merge when all merge checks for {mr.sha} pass"
                )
            mr.updated_at = _now()
            return Response.json(200, self._mr_json(mr, branches, detailed=True, consume=False))
        if state != "mergeable":
            raise ApiError(405, NOT_ALLOWED)
        message = params.get("squash_commit_message" if mr.squash else "merge_commit_message")
        self._perform_merge(mr, self.user, str(message) if message else None)
        branches = mr.project.repo.branches()
        return Response.json(200, self._mr_json(mr, branches, detailed=True, consume=False))

    def _get_approvals(self, req: Request, m: dict[str, str]) -> Response:
        return Response.json(200, self._approvals_json(self._mr(m)))

    def _approve_mr(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        params = self._params(req)
        self._sync(mr, mr.project.repo.branches())
        if params.get("sha") and params["sha"] != mr.sha:
            raise ApiError(409, {"message": "SHA does not match HEAD of source branch"})
        if self.user in mr.approved_by:
            raise ApiError(401, {"message": "401 Unauthorized"})
        mr.approved_by.append(self.user)
        self._system_note(mr, "approved this merge request")
        self._try_auto_merge(mr)
        return Response.json(201, self._approvals_json(mr))

    def _unapprove_mr(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        if self.user not in mr.approved_by:
            raise _not_found("")
        mr.approved_by.remove(self.user)
        return Response.json(201, self._approvals_json(mr))

    def _list_notes(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        reverse = req.arg("sort", "desc") == "desc"
        notes = sorted(mr.notes, key=lambda n: n.id, reverse=reverse)
        return self._paginate(req, notes, lambda n: self._note_json(mr, n))

    def _create_note(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        body = self._params(req).get("body")
        if not body:
            raise ApiError(400, {"error": "body is missing"})
        note = Note(self._next("note"), str(body), self.user)
        mr.notes.append(note)
        return Response.json(201, self._note_json(mr, note))

    def _list_mr_pipelines(self, req: Request, m: dict[str, str]) -> Response:
        mr = self._mr(m)
        self._sync(mr, mr.project.repo.branches())
        pipelines = sorted(mr.pipelines, key=lambda pl: pl.id, reverse=True)
        return self._paginate(req, pipelines, lambda pl: self._pipeline_json(mr.project, pl))
