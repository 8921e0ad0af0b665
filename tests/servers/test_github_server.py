"""GitHubServer driven with httpx: Link pagination, pull-request quirks, merges, checks."""

from __future__ import annotations

import time
from typing import Any

import httpx

from .github import GitHubServer

AUTO_MERGE = """
mutation($id: ID!, $method: PullRequestMergeMethod) {
  enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: $method}) {
    pullRequest { id autoMergeRequest { enabledAt mergeMethod } }
  }
}
"""


def _open_pull(gh: httpx.Client, repo: str, head: str, **extra: Any) -> dict[str, Any]:
    resp = gh.post(
        f"/repos/{repo}/pulls", json={"title": head, "head": head, "base": "main", **extra}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_repo_listing_follows_link_header(github_server: GitHubServer, gh: httpx.Client) -> None:
    for i in range(5):
        github_server.add_repo(f"acme/svc{i}", topics=["python"])
    github_server.add_repo("acme/archived", archived=True)
    github_server.add_repo("acme/empty", files={})
    github_server.add_repo("other/x")

    names: list[str] = []
    url: str | None = "/orgs/acme/repos?per_page=3"
    pages = 0
    while url:
        resp = gh.get(url)
        assert resp.status_code == 200
        assert "x-total" not in resp.headers  # GitHub gives no totals
        names += [r["full_name"] for r in resp.json()]
        url, pages = resp.links.get("next", {}).get("url"), pages + 1
    assert pages == 3
    assert sorted(names) == sorted(
        [f"acme/svc{i}" for i in range(5)] + ["acme/archived", "acme/empty"]
    )
    assert names[0] == "acme/empty"  # default sort for orgs: created, newest first

    first = gh.get("/orgs/acme/repos", params={"per_page": 3})
    assert set(first.links) == {"next", "last"}
    assert first.links["last"]["url"].endswith("page=3&per_page=3")
    middle = gh.get(first.links["next"]["url"])
    assert set(middle.links) == {"prev", "next", "last", "first"}
    assert "link" not in gh.get("/orgs/acme/repos", params={"per_page": 100}).headers

    by_name = {r["name"]: r for r in gh.get("/orgs/acme/repos?per_page=100").json()}
    assert by_name["empty"]["size"] == 0 and by_name["svc0"]["size"] > 0
    assert by_name["archived"]["archived"] is True
    assert by_name["svc0"]["clone_url"] == f"{github_server.url}/acme/svc0.git"
    assert by_name["svc0"]["owner"]["login"] == "acme" and by_name["svc0"]["topics"] == ["python"]
    assert gh.get("/orgs/nope/repos").status_code == 404


def test_rate_limit_headers_on_every_response(
    github_server: GitHubServer, gh: httpx.Client
) -> None:
    first = gh.get("/user")
    second = gh.get("/user")
    for resp in (first, second):
        for name in ("limit", "remaining", "used", "reset", "resource"):
            assert f"x-ratelimit-{name}" in resp.headers
    assert int(second.headers["x-ratelimit-remaining"]) == (
        int(first.headers["x-ratelimit-remaining"]) - 1
    )
    assert int(first.headers["x-ratelimit-reset"]) > time.time()

    github_server.set_rate_limit(remaining=0)
    limited = gh.get("/user")
    assert limited.status_code == 403
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.json()["message"].startswith("API rate limit exceeded")


def test_bad_credentials(github_server: GitHubServer) -> None:
    resp = httpx.get(f"{github_server.url}/user", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.json()["message"] == "Bad credentials"
    assert "documentation_url" in resp.json()
    assert httpx.get(f"{github_server.url}/user").json()["message"] == "Requires authentication"


def test_head_filter_needs_owner_prefix(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.add_repo("acme/api")
    for branch in ("fleet/a", "fleet/b"):
        github_server.commit("acme/api", branch, {f"{branch}.txt": "x\n"})
        _open_pull(gh, "acme/api", branch)

    with_owner = gh.get("/repos/acme/api/pulls", params={"head": "acme:fleet/a"}).json()
    assert [p["head"]["ref"] for p in with_owner] == ["fleet/a"]
    without_owner = gh.get("/repos/acme/api/pulls", params={"head": "fleet/a"}).json()
    assert {p["head"]["ref"] for p in without_owner} == {"fleet/a", "fleet/b"}  # ignored!
    assert gh.get("/repos/acme/api/pulls", params={"head": "other:fleet/a"}).json() == []
    assert "mergeable" not in with_owner[0]  # list entries lack mergeability, like GitHub


def test_create_duplicate_and_invalid_pulls(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.add_repo("acme/api")
    github_server.commit("acme/api", "fleet/a", {"a.txt": "a\n"})
    created = _open_pull(gh, "acme/api", "fleet/a", body="Automated", draft=True)
    assert created["number"] == 1 and created["draft"] is True and created["state"] == "open"
    assert created["head"]["label"] == "acme:fleet/a"
    assert created["mergeable"] is None  # computed asynchronously on GitHub
    assert created["html_url"] == f"{github_server.url}/acme/api/pull/1"

    dup = gh.post(
        "/repos/acme/api/pulls", json={"title": "again", "head": "acme:fleet/a", "base": "main"}
    )
    assert dup.status_code == 422
    body = dup.json()
    assert body["message"] == "Validation Failed"
    assert body["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for acme:fleet/a.",
        }
    ]
    assert body["documentation_url"].startswith("https://docs.github.com/")

    missing = gh.post("/repos/acme/api/pulls", json={"title": "x", "head": "nope", "base": "main"})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"resource": "PullRequest", "field": "head", "code": "invalid"}
    ]
    github_server.commit("acme/api", "same", {}, start_point="main")
    nothing = gh.post("/repos/acme/api/pulls", json={"title": "x", "head": "main", "base": "main"})
    assert nothing.json()["errors"][0]["message"] == "No commits between main and main"


def test_merge_sha_guard_and_merge(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.add_repo("acme/api", files={"a.txt": "a\n", "b.txt": "b\n"})
    github_server.commit("acme/api", "fleet/a", {"a.txt": "A\n"})
    main_before = github_server.commit("acme/api", "main", {"b.txt": "B\n"})
    pr = _open_pull(gh, "acme/api", "fleet/a")
    pr = gh.get("/repos/acme/api/pulls/1").json()
    assert (pr["mergeable"], pr["mergeable_state"]) == (True, "clean")

    stale = gh.put("/repos/acme/api/pulls/1/merge", json={"sha": "0" * 40})
    assert stale.status_code == 409
    assert stale.json()["message"] == "Head branch was modified. Review and try the merge again."

    merged = gh.put("/repos/acme/api/pulls/1/merge", json={"sha": pr["head"]["sha"]})
    assert merged.status_code == 200
    assert merged.json()["merged"] is True
    tip = github_server.branch_sha("acme/api", "main")
    assert merged.json()["sha"] == tip
    info = github_server.repo("acme/api").repo.commit_info(tip or "")
    assert info["parent_ids"] == [main_before, pr["head"]["sha"]]
    assert str(info["title"]).startswith("Merge pull request #1 from acme/fleet/a")

    after = gh.get("/repos/acme/api/pulls/1").json()
    assert after["state"] == "closed" and after["merged"] is True and after["merged_at"]
    assert gh.get("/repos/acme/api/pulls/1/merge").status_code == 204
    again = gh.put("/repos/acme/api/pulls/1/merge", json={})
    assert (again.status_code, again.json()["message"]) == (405, "Pull Request is not mergeable")


def test_conflicting_pull_is_not_mergeable(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.mergeability_delay = 1
    github_server.add_repo("acme/api", files={"a.txt": "a\n"})
    github_server.commit("acme/api", "fleet/a", {"a.txt": "mine\n"})
    github_server.commit("acme/api", "main", {"a.txt": "theirs\n"})
    _open_pull(gh, "acme/api", "fleet/a")
    github_server.commit("acme/api", "fleet/a", {"c.txt": "c\n"})  # a push restarts the check

    pending = gh.get("/repos/acme/api/pulls/1").json()
    assert (pending["mergeable"], pending["mergeable_state"]) == (None, "unknown")
    settled = gh.get("/repos/acme/api/pulls/1").json()
    assert (settled["mergeable"], settled["mergeable_state"]) == (False, "dirty")
    resp = gh.put("/repos/acme/api/pulls/1/merge", json={"sha": settled["head"]["sha"]})
    assert (resp.status_code, resp.json()["message"]) == (405, "Pull Request is not mergeable")


def test_labels_comments_reviewers_assignees_and_patch(
    github_server: GitHubServer, gh: httpx.Client
) -> None:
    github_server.add_repo("acme/api")
    github_server.add_user("alice")
    github_server.commit("acme/api", "fleet/a", {"a.txt": "a\n"})
    _open_pull(gh, "acme/api", "fleet/a")

    labels = gh.post("/repos/acme/api/issues/1/labels", json={"labels": ["fleet", "auto"]})
    assert [label["name"] for label in labels.json()] == ["auto", "fleet"]
    comment = gh.post("/repos/acme/api/issues/1/comments", json={"body": "hello"})
    assert comment.status_code == 201 and comment.json()["body"] == "hello"
    reviewers = gh.post(
        "/repos/acme/api/pulls/1/requested_reviewers", json={"reviewers": ["alice"]}
    )
    assert reviewers.status_code == 201
    assert [u["login"] for u in reviewers.json()["requested_reviewers"]] == ["alice"]
    stranger = gh.post(
        "/repos/acme/api/pulls/1/requested_reviewers", json={"reviewers": ["mallory"]}
    )
    assert stranger.status_code == 422
    assignees = gh.post(
        "/repos/acme/api/issues/1/assignees", json={"assignees": ["alice", "ghost"]}
    )
    assert [u["login"] for u in assignees.json()["assignees"]] == ["alice"]  # unknown: ignored

    patched = gh.patch("/repos/acme/api/pulls/1", json={"title": "New", "body": "B"}).json()
    assert (patched["title"], patched["body"]) == ("New", "B")
    closed = gh.patch("/repos/acme/api/pulls/1", json={"state": "closed"}).json()
    assert closed["state"] == "closed" and closed["merged"] is False
    assert gh.get("/repos/acme/api/pulls", params={"state": "closed"}).json()[0]["number"] == 1


def test_branch_protection_checks_reviews_and_auto_merge(
    github_server: GitHubServer, gh: httpx.Client
) -> None:
    github_server.add_repo("acme/api")
    github_server.protect_branch("acme/api", "main", required_checks=["ci"], required_approvals=1)
    github_server.commit("acme/api", "fleet/a", {"a.txt": "a\n"})
    pr = _open_pull(gh, "acme/api", "fleet/a")
    sha = pr["head"]["sha"]

    blocked = gh.put("/repos/acme/api/pulls/1/merge", json={"sha": sha})
    assert blocked.status_code == 405
    assert 'Required status check "ci" is expected.' in blocked.json()["message"]
    assert gh.get("/repos/acme/api/pulls/1").json()["mergeable_state"] == "blocked"
    own = gh.post("/repos/acme/api/pulls/1/reviews", json={"event": "APPROVE"})
    assert own.status_code == 422  # no approving your own pull request

    github_server.set_check_run("acme/api", sha, "ci", status="in_progress")
    runs = gh.get(f"/repos/acme/api/commits/{sha}/check-runs").json()
    assert runs["total_count"] == 1 and runs["check_runs"][0]["status"] == "in_progress"
    enabled = gh.post(
        "/graphql",
        json={"query": AUTO_MERGE, "variables": {"id": pr["node_id"], "method": "SQUASH"}},
    )
    assert enabled.status_code == 200 and "errors" not in enabled.json()
    request = enabled.json()["data"]["enablePullRequestAutoMerge"]["pullRequest"]
    assert request["autoMergeRequest"]["mergeMethod"] == "SQUASH"
    assert gh.get("/repos/acme/api/pulls/1").json()["auto_merge"]["merge_method"] == "squash"

    github_server.set_check_run("acme/api", sha, "ci", conclusion="success")
    github_server.set_status("acme/api", sha, "lint", "success")
    status = gh.get("/repos/acme/api/commits/fleet/a/status").json()
    assert status["state"] == "success" and status["sha"] == sha
    assert gh.get("/repos/acme/api/pulls/1").json()["merged"] is False  # approval missing

    github_server.approve("acme/api", 1, "alice")
    reviews = gh.get("/repos/acme/api/pulls/1/reviews").json()
    assert [(r["user"]["login"], r["state"]) for r in reviews] == [("alice", "APPROVED")]
    merged = gh.get("/repos/acme/api/pulls/1").json()
    assert merged["merged"] is True and merged["auto_merge"] is None
    tip = github_server.branch_sha("acme/api", "main") or ""
    assert github_server.repo("acme/api").repo.commit_info(tip)["parent_ids"] != [sha]


def test_auto_merge_refused_on_clean_pull(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.add_repo("acme/api")
    github_server.commit("acme/api", "fleet/a", {"a.txt": "a\n"})
    pr = _open_pull(gh, "acme/api", "fleet/a")
    resp = gh.post("/graphql", json={"query": AUTO_MERGE, "variables": {"id": pr["node_id"]}})
    assert resp.status_code == 200
    assert resp.json()["errors"][0]["message"] == "Pull request Pull request is in clean status"
    unknown = gh.post("/graphql", json={"query": AUTO_MERGE, "variables": {"id": "PR_nope"}})
    assert unknown.json()["errors"][0]["type"] == "NOT_FOUND"


def test_delete_branch_ref(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.add_repo("acme/api")
    github_server.commit("acme/api", "fleet/a", {"a.txt": "a\n"})
    _open_pull(gh, "acme/api", "fleet/a")

    assert gh.delete("/repos/acme/api/git/refs/heads/fleet/a").status_code == 204
    assert github_server.branch_sha("acme/api", "fleet/a") is None
    gone = gh.delete("/repos/acme/api/git/refs/heads/fleet/a")
    assert (gone.status_code, gone.json()["message"]) == (422, "Reference does not exist")
    assert gh.get("/repos/acme/api/pulls/1").json()["state"] == "closed"  # head deleted


def test_ghes_prefix_and_repo_details(github_server: GitHubServer, gh: httpx.Client) -> None:
    github_server.add_repo("acme/api", private=False)
    github_server.add_repo("acme/fork", fork_of="acme/api")
    repo = gh.get("/api/v3/repos/acme/fork").json()
    assert repo["fork"] is True and repo["parent"]["full_name"] == "acme/api"
    assert repo["allow_auto_merge"] is True and repo["default_branch"] == "main"
    missing = gh.get("/repos/acme/nope")
    assert (missing.status_code, missing.json()["message"]) == (404, "Not Found")
