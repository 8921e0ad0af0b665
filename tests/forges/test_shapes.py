"""Request shaping and answer parsing the test servers do not exercise (httpx.MockTransport)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fleetchange.forges.base import ForgeAuthError, ForgeError, MergeRequest, MRSpec, RepoRef
from fleetchange.forges.github import GitHubForge
from fleetchange.forges.gitlab import GitLabForge

from .conftest import FAST, Sleeps

Handler = Callable[[httpx.Request], httpx.Response]
GL_REPO = RepoRef("platform/api", "https://gl.example/platform/api.git", "main", forge_id="7")
GH_REPO = RepoRef("acme/api", "https://github.com/acme/api.git", "main", forge_id="R_1")
SPEC = MRSpec("fc/x", "main", "Title", "Body", labels=("fleetchange",), draft=True)


def gitlab(handler: Handler, sleeps: Sleeps) -> GitLabForge:
    return GitLabForge(
        "https://gl.example",
        token="glpat-shape-token",
        transport=httpx.MockTransport(handler),
        sleep=sleeps,
        retry=FAST,
    )


def github(handler: Handler, sleeps: Sleeps) -> GitHubForge:
    return GitHubForge(
        "https://api.github.com",
        token="ghp_shape_token",
        transport=httpx.MockTransport(handler),
        sleep=sleeps,
        retry=FAST,
        write_interval=0,
    )


def gl_mr(iid: int, state: str = "opened", **kw: Any) -> dict[str, Any]:
    return {
        "id": 100 + iid,
        "iid": iid,
        "state": state,
        "title": "Title",
        "description": "Body",
        "source_branch": "fc/x",
        "target_branch": "main",
        "source_project_id": 7,
        "target_project_id": 7,
        "sha": "a" * 40,
        "labels": ["fleetchange"],
        "web_url": f"https://gl.example/platform/api/-/merge_requests/{iid}",
        **kw,
    }


def gh_pr(number: int, owner: str = "acme", state: str = "open", **kw: Any) -> dict[str, Any]:
    return {
        "number": number,
        "node_id": f"PR_{number}",
        "state": state,
        "title": "Title",
        "body": None,
        "draft": False,
        "labels": [{"name": "fleetchange"}],
        "html_url": f"https://github.com/acme/api/pull/{number}",
        "head": {"ref": "fc/x", "label": f"{owner}:fc/x", "sha": "b" * 40},
        "base": {"ref": "main"},
        **kw,
    }


def test_gitlab_headers_and_encoded_paths(sleeps: Sleeps) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    forge = gitlab(handle, sleeps)
    forge.delete_branch(RepoRef("platform/sub/api", "u", "main"), "fleetchange/x y")
    assert seen[0].url.raw_path == (
        b"/api/v4/projects/platform%2Fsub%2Fapi/repository/branches/fleetchange%2Fx%20y"
    )
    assert seen[0].headers["Authorization"] == "Bearer glpat-shape-token"
    assert seen[0].headers["User-Agent"].startswith("fleetchange/")


def test_gitlab_find_skips_fork_mrs_and_prefers_the_open_one(sleeps: Sleeps) -> None:
    answers = [gl_mr(5, "closed"), gl_mr(4, source_project_id=99), gl_mr(3), gl_mr(2, "merged")]

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.params["source_branch"] == "fc/x"
        assert request.url.params["state"] == "all" and request.url.params["sort"] == "desc"
        return httpx.Response(200, json=answers, headers={"X-Next-Page": ""})

    found = gitlab(handle, sleeps).find_mr(GL_REPO, "fc/x")
    assert found is not None and (found.number, found.state) == (3, "open")


def test_gitlab_answers_of_older_versions_and_drafts(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/approvals"):
            return httpx.Response(404, json={"message": "404 Not Found"})  # CE without approvals
        data = gl_mr(1, "locked", title="[Draft] Title", work_in_progress=True)
        data.update(merge_status="cannot_be_merged", head_pipeline={"status": "created"})
        return httpx.Response(200, json=data)

    mr = gitlab(handle, sleeps).get_mr(GL_REPO, 1)
    assert (mr.state, mr.title, mr.draft) == ("open", "Title", True)
    assert (mr.mergeable, mr.merge_status, mr.pipeline, mr.approved) == (
        False,
        "cannot_be_merged",
        "pending",
        None,
    )


def test_gitlab_undecided_mergeability_is_none(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/approvals"):
            return httpx.Response(200, json={"approvals_left": 2, "approved": False})
        return httpx.Response(200, json=gl_mr(1, detailed_merge_status="checking"))

    mr = gitlab(handle, sleeps).get_mr(GL_REPO, 1)
    assert mr.mergeable is None and mr.approvals_left == 2 and mr.approved is False


@pytest.mark.parametrize("status", [405, 406, 422])
def test_gitlab_refused_merges_of_any_version(sleeps: Sleeps, status: int) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(status, json={"message": "Branch cannot be merged"})
        if request.url.path.endswith("/approvals"):
            return httpx.Response(200, json={"approved": True, "approvals_left": 0})
        return httpx.Response(200, json=gl_mr(1, detailed_merge_status="need_rebase"))

    mr = MergeRequest(1, "u", "open", "fc/x", "main")
    with pytest.raises(
        ForgeError, match=rf"platform/api!1: not mergeable: need_rebase \({status}\)"
    ):
        gitlab(handle, sleeps).merge_mr(GL_REPO, mr, sha="a" * 40)


def test_gitlab_401_on_merge_is_a_permission_problem_not_a_bad_token(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "401 Unauthorized"})

    mr = MergeRequest(1, "u", "open", "fc/x", "main")
    with pytest.raises(ForgeError) as err:
        gitlab(handle, sleeps).merge_mr(GL_REPO, mr, sha="a" * 40)
    assert not isinstance(err.value, ForgeAuthError)
    assert "missing permission to merge (401)" in str(err.value)


def test_github_find_ignores_pulls_of_other_owners(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.params["head"] == "acme:fc/x"
        return httpx.Response(200, json=[gh_pr(9, owner="mallory"), gh_pr(4, state="closed")])

    found = github(handle, sleeps).find_mr(GH_REPO, "fc/x")
    assert found is not None and (found.number, found.state, found.body) == (4, "closed", "")


def test_github_merged_state_from_the_list(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        merged = gh_pr(4, state="closed", merged_at="2024-01-01T00:00:00Z")
        return httpx.Response(200, json=[merged])

    found = github(handle, sleeps).find_mr(GH_REPO, "fc/x")
    assert found is not None and found.state == "merged"


def test_github_draft_falls_back_where_drafts_are_not_supported(sleeps: Sleeps) -> None:
    posted: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pulls"):
            posted.append(json.loads(request.content))
            if len(posted) == 1:
                return httpx.Response(
                    422,
                    json={
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "code": "custom",
                                "message": "Draft pull requests are not supported in this repository.",
                            }
                        ],
                    },
                )
            return httpx.Response(201, json=gh_pr(1, body="Body"))
        return httpx.Response(200, json=[{"name": "fleetchange"}])

    mr = github(handle, sleeps).create_mr(GH_REPO, SPEC)
    assert [p["draft"] for p in posted] == [True, False]
    assert mr.number == 1 and mr.labels == ("fleetchange",)


def test_github_draft_toggles_through_graphql(sleeps: Sleeps) -> None:
    queries: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/graphql":
            queries.append(json.loads(request.content)["query"])
            return httpx.Response(200, json={"data": {}})
        return httpx.Response(200, json=gh_pr(1, draft=False))

    current = MergeRequest(1, "u", "open", "fc/x", "main", labels=("fleetchange",))
    updated = github(handle, sleeps).update_mr(GH_REPO, current, SPEC)
    assert updated.draft is True
    assert len(queries) == 1 and "convertPullRequestToDraft" in queries[0]


def test_github_auto_merge_graphql_errors(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        error = {"type": "UNPROCESSABLE", "message": "Pull request Auto merge is not allowed"}
        return httpx.Response(
            200, json={"data": {"enablePullRequestAutoMerge": None}, "errors": [error]}
        )

    mr = MergeRequest(1, "u", "open", "fc/x", "main", extra={"node_id": "PR_1"})
    with pytest.raises(ForgeError, match=r"acme/api#1: cannot enable auto-merge: .*not allowed"):
        github(handle, sleeps).merge_mr(GH_REPO, mr, sha="b" * 40, auto=True)


def test_github_enterprise_paths(sleeps: Sleeps) -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/graphql"):
            return httpx.Response(200, json={"data": {"enablePullRequestAutoMerge": {}}})
        if request.url.path.endswith("/reviews"):
            return httpx.Response(200, json=[])
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"state": "pending", "statuses": []})
        if request.url.path.endswith("/check-runs"):
            return httpx.Response(200, json={"total_count": 0, "check_runs": []})
        return httpx.Response(200, json=gh_pr(1, auto_merge={"merge_method": "merge"}))

    forge = GitHubForge(
        "https://ghe.example.com",
        token="ghp_shape_token",
        transport=httpx.MockTransport(handle),
        sleep=sleeps,
        write_interval=0,
    )
    mr = MergeRequest(1, "u", "open", "fc/x", "main", extra={"node_id": "PR_1"})
    done = forge.merge_mr(GH_REPO, mr, sha="b" * 40, auto=True)
    assert seen[0] == "/api/graphql" and seen[1] == "/api/v3/repos/acme/api/pulls/1"
    assert done.extra["auto_merge"] == "true" and done.pipeline is None


def test_a_forked_child_gets_a_fresh_client(sleeps: Sleeps) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[], headers={"X-Next-Page": ""})

    forge = gitlab(handle, sleeps)
    assert forge.find_mr(GL_REPO, "fc/x") is None
    assert forge.api._http is not None
    pid = os.fork()
    if pid == 0:  # the child: fresh pool, and it works
        code = 0 if forge.api._http is None and forge.find_mr(GL_REPO, "fc/x") is None else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert forge.api._http is not None  # the parent keeps its own
