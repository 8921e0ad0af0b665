"""GitHubForge against the in-process GitHub server (real HTTP on 127.0.0.1, real git)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from fleetchange import gitops
from fleetchange.forges.base import ForgeAuthError, ForgeError, MRSpec, RepoRef
from fleetchange.forges.github import GitHubForge, approval_state, graphql_url, normalize_url
from tests.servers.github import GitHubServer, Review

from .conftest import FAST, Sleeps, lose_answers, wait_for

BRANCH = "fleetchange/logging-warn"


def spec(**kw: object) -> MRSpec:
    values: dict[str, object] = {
        "source_branch": BRANCH,
        "target_branch": "main",
        "title": "Replace logging.warn",
        "body": "logging.warn is deprecated.",
        "labels": ("fleetchange", "automated"),
    }
    values.update(kw)
    return MRSpec(**values)  # type: ignore[arg-type]


def repo(github: GitHubForge, name: str) -> RepoRef:
    return next(r for r in github.list_repos() if r.name == name)


@pytest.fixture
def api_repo(github_server: GitHubServer, github: GitHubForge) -> RepoRef:
    github_server.add_repo("acme/api", files={"app.py": "A = 1\n"})
    github_server.commit("acme/api", BRANCH, {"app.py": "A = 2\n"}, "fleetchange change")
    return repo(github, "acme/api")


def test_urls() -> None:
    assert normalize_url(None) == "https://api.github.com"
    assert normalize_url("https://github.com/") == "https://api.github.com"
    assert normalize_url("https://ghe.example.com") == "https://ghe.example.com/api/v3"
    assert normalize_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com/api/v3"
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url("https://ghe.example.com/api/v3") == "https://ghe.example.com/api/graphql"


# -- listing -------------------------------------------------------------------------


def test_lists_orgs_and_users_across_pages_with_flags(
    github_server: GitHubServer, sleeps: Sleeps
) -> None:
    github_server.add_repo("acme/a", topics=["python"])
    github_server.add_repo("acme/b")
    github_server.add_repo("acme/old", archived=True)
    github_server.add_repo("acme/empty", files={})
    github_server.add_repo("acme/fork", fork_of="acme/a")
    github_server.add_user("alice")
    github_server.add_repo("alice/dots")
    github_server.add_repo("other/x")
    forge = GitHubForge(
        github_server.url, groups=["acme", "alice"], token=github_server.token, per_page=2
    )

    repos = {r.name: r for r in forge.list_repos()}

    assert set(repos) == {"acme/a", "acme/b", "acme/old", "acme/empty", "acme/fork", "alice/dots"}
    assert github_server.log.count("GET", r"/orgs/acme/repos$") == 3  # 5 at 2 a page
    assert github_server.log.count("GET", r"/orgs/alice/repos$", status=404) == 1
    assert github_server.log.count("GET", r"/users/alice/repos$", status=200) == 1
    a = repos["acme/a"]
    assert a.clone_url == f"{github_server.url}/acme/a.git" and a.topics == ("python",)
    assert a.default_branch == "main" and (a.archived, a.fork, a.empty) == (False, False, False)
    assert a.forge_id == github_server.repo("acme/a").node_id
    assert repos["acme/old"].archived and repos["acme/fork"].fork
    assert repos["acme/empty"].empty and repos["acme/empty"].default_branch is None


def test_the_tokens_own_user_and_no_groups(github_server: GitHubServer) -> None:
    github_server.add_repo("fleetbot/mine")
    github_server.add_repo("acme/a")
    mine = GitHubForge(github_server.url, groups=["fleetbot"], token=github_server.token)
    assert [r.name for r in mine.list_repos()] == ["fleetbot/mine"]
    assert github_server.log.last("GET", r"/user/repos$").query["affiliation"] == ["owner"]
    everything = GitHubForge(github_server.url, token=github_server.token)
    assert sorted(r.name for r in everything.list_repos()) == ["acme/a", "fleetbot/mine"]


def test_unknown_owner_is_a_clear_error(github_server: GitHubServer) -> None:
    forge = GitHubForge(github_server.url, groups=["nobody"], token=github_server.token)
    with pytest.raises(ForgeError, match="GitHub organisation or user 'nobody' not found"):
        list(forge.list_repos())
    nested = GitHubForge(github_server.url, groups=["edge/tools"], token=github_server.token)
    with pytest.raises(ForgeError, match="not a GitHub organisation or user name"):
        list(nested.list_repos())


def test_bad_and_missing_tokens(
    github_server: GitHubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = GitHubForge(github_server.url, groups=["acme"], token="ghp_wrong_token_123")
    with pytest.raises(ForgeAuthError) as err:
        list(bad.list_repos())
    assert str(err.value).startswith(f"GitHub rejected the token (401) for {github_server.url}")
    assert "ghp_wrong_token_123" not in str(err.value)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(ForgeAuthError, match="set GITHUB_TOKEN"):
        list(GitHubForge(github_server.url).list_repos())


def test_push_through_git_env_as_x_access_token(
    github_server: GitHubServer,
    github: GitHubForge,
    api_repo: RepoRef,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        argv.append(list(args))
        return real_run(args, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "run", recording_run)  # git on both sides
    env = github.git_env()
    work = tmp_path / "scratch"
    gitops.git("clone", "-q", api_repo.clone_url, str(work), cwd=tmp_path, env=env)
    (work / "new.py").write_text("N = 1\n")
    gitops.git("add", "new.py", cwd=work)
    gitops.git("commit", "-qm", "new", cwd=work)
    gitops.git("push", "-q", api_repo.clone_url, "HEAD:refs/heads/other", cwd=work, env=env)

    assert github_server.branch_sha("acme/api", "other") == gitops.git(
        "rev-parse", "HEAD", cwd=work
    )
    # ghs_ tokens only work with the x-access-token user name on this server, as on GitHub
    assert env["FLEETCHANGE_GIT_USERNAME"] == "x-access-token"
    token = github_server.token
    assert token not in (work / ".git" / "config").read_text()
    assert all(token not in arg for args in argv for arg in args)


# -- pull requests -------------------------------------------------------------------


def test_find_or_create_labels_reviewers_and_the_422_duplicate(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    github_server.add_user("alice")
    assert github.find_mr(api_repo, BRANCH) is None
    assert github_server.log.last("GET", r"/pulls$").query["head"] == [f"acme:{BRANCH}"]

    mr = github.create_mr(api_repo, spec(assignees=("alice",), reviewers=("alice",)))
    assert (mr.number, mr.state, mr.source_branch, mr.target_branch) == (1, "open", BRANCH, "main")
    assert mr.labels == ("automated", "fleetchange") and mr.mergeable is None
    assert mr.head_sha == github_server.branch_sha("acme/api", BRANCH)
    pull = github_server.pull("acme/api", 1)
    assert [a.login for a in pull.assignees] == ["alice"]
    assert [a.login for a in pull.requested_reviewers] == ["alice"]
    assert json.loads(github_server.log.last("POST", r"/pulls$").body)["head"] == f"acme:{BRANCH}"

    again = github.create_mr(api_repo, spec(title="Better title"))  # answered 422
    assert again.number == 1 and again.title == "Better title"
    assert github_server.log.count("POST", r"/pulls$", status=422) == 1
    assert len(github_server.pulls) == 1


def test_a_reviewer_who_may_not_review_does_not_fail_the_change(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    mr = github.create_mr(api_repo, spec(reviewers=("mallory",)))
    assert mr.state == "open" and "collaborator" in mr.extra["reviewers_error"]


@pytest.mark.parametrize("how", ["reset", "stall"])
def test_a_create_whose_answer_is_lost_makes_exactly_one_pr(
    github_server: GitHubServer, api_repo: RepoRef, sleeps: Sleeps, how: str
) -> None:
    forge = GitHubForge(
        github_server.url,
        token=github_server.token,
        sleep=sleeps,
        retry=FAST,
        write_interval=0,
        timeout=httpx.Timeout(0.5, connect=5),
    )
    lost = lose_answers(github_server, "POST", r"/pulls$", stall=1.0 if how == "stall" else None)
    mr = forge.create_mr(api_repo, spec())
    assert lost == [201] and mr.number == 1 and len(github_server.pulls) == 1
    wait_for(lambda: github_server.log.count("POST", r"/pulls$") > 0)
    assert github_server.log.count("POST", r"/pulls$") == 1


def test_update_close_and_comment(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    mr = github.create_mr(api_repo, spec())
    updated = github.update_mr(api_repo, mr, spec(title="T2", body="B2", labels=("only",)))
    assert (updated.title, updated.body, updated.labels) == ("T2", "B2", ("only",))
    assert github_server.pull("acme/api", 1).labels == ["only"]
    closed = github.close_mr(api_repo, updated, "Not needed any more.")
    assert closed.state == "closed"
    pull = github_server.pull("acme/api", 1)
    assert [c.body for c in pull.comments] == ["Not needed any more."]
    comment_at = github_server.log.last("POST", r"/comments$").at
    assert comment_at <= github_server.log.last("PATCH", r"/pulls/1$").at
    found = github.find_mr(api_repo, BRANCH)
    assert found is not None and found.state == "closed"


def test_checks_and_reviews_make_pipeline_and_approval(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    mr = github.create_mr(api_repo, spec())
    sha = mr.head_sha or ""
    fresh = github.get_mr(api_repo, 1)
    assert (fresh.pipeline, fresh.approved) == (None, False)
    assert fresh.mergeable is True and fresh.merge_status == "clean"

    github_server.set_status("acme/api", sha, "lint", "success")
    github_server.set_check_run("acme/api", sha, "ci", status="queued", conclusion=None)
    assert github.get_mr(api_repo, 1).pipeline == "pending"
    github_server.set_check_run("acme/api", sha, "ci", status="in_progress", conclusion=None)
    assert github.get_mr(api_repo, 1).pipeline == "running"
    github_server.set_check_run("acme/api", sha, "ci", conclusion="success")
    assert github.get_mr(api_repo, 1).pipeline == "success"
    github_server.set_status("acme/api", sha, "lint", "failure")
    assert github.get_mr(api_repo, 1).pipeline == "failed"

    github_server.approve("acme/api", 1, "alice")
    assert github.get_mr(api_repo, 1).approved is True
    with github_server.lock:
        pull = github_server.pull("acme/api", 1)
        bob = github_server.add_user("bob")
        pull.reviews.append(Review(github_server._next("review"), bob, "CHANGES_REQUESTED", sha))
    assert github.get_mr(api_repo, 1).approved is False


def test_approval_state_takes_each_reviewers_latest_verdict() -> None:
    def review(user: str, state: str) -> dict[str, object]:
        return {"user": {"login": user}, "state": state}

    assert approval_state([review("a", "APPROVED"), review("a", "COMMENTED")])
    assert not approval_state([review("a", "CHANGES_REQUESTED"), review("b", "APPROVED")])
    assert approval_state([review("a", "CHANGES_REQUESTED"), review("a", "APPROVED")])
    assert not approval_state([review("a", "APPROVED"), review("a", "DISMISSED")])
    assert not approval_state([])


def test_merge_with_the_sha_guard_and_conflicts(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    mr = github.create_mr(api_repo, spec())
    sha = mr.head_sha or ""
    with pytest.raises(ForgeError, match="head moved"):
        github.merge_mr(api_repo, mr, sha="0" * 40)
    merged = github.merge_mr(api_repo, mr, sha=sha)
    assert merged.state == "merged" and github_server.branch_sha("acme/api", "main") == sha
    assert json.loads(github_server.log.last("PUT", r"/merge$").body)["sha"] == sha
    assert github.merge_mr(api_repo, mr, sha=sha).state == "merged"  # a retried merge

    github_server.commit("acme/api", "other", {"app.py": "A = 5\n"})
    github_server.commit("acme/api", "main", {"app.py": "A = 6\n"})
    conflicted = github.create_mr(api_repo, spec(source_branch="other"))
    fresh = github.get_mr(api_repo, conflicted.number)
    assert fresh.has_conflicts and fresh.mergeable is False and fresh.merge_status == "dirty"
    with pytest.raises(ForgeError, match=r"acme/api#2: not mergeable: .*\(405\)"):
        github.merge_mr(api_repo, fresh, sha=fresh.head_sha or "")


def test_auto_merge_through_graphql(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    github_server.protect_branch("acme/api", "main", required_checks=["ci"])
    mr = github.create_mr(api_repo, spec())
    sha = mr.head_sha or ""
    github_server.set_check_run("acme/api", sha, "ci", status="in_progress", conclusion=None)
    waiting = github.merge_mr(api_repo, mr, sha=sha, auto=True)
    assert waiting.state == "open" and waiting.extra.get("auto_merge") == "true"
    sent = json.loads(github_server.log.last("POST", r"/graphql$").body)
    assert "enablePullRequestAutoMerge" in sent["query"]
    assert sent["variables"] == {"pr": github_server.pull("acme/api", 1).node_id, "sha": sha}
    github_server.set_check_run("acme/api", sha, "ci", conclusion="success")
    assert github.get_mr(api_repo, 1).state == "merged"


def test_auto_merge_on_an_unprotected_branch(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    mr = github.create_mr(api_repo, spec())
    sha = mr.head_sha or ""
    github_server.set_check_run("acme/api", sha, "ci", status="in_progress", conclusion=None)
    with pytest.raises(ForgeError, match="GitHub cannot merge automatically"):
        github.merge_mr(api_repo, mr, sha=sha, auto=True)  # never merged behind running CI
    assert github_server.pull("acme/api", 1).state == "open"
    github_server.set_check_run("acme/api", sha, "ci", conclusion="success")
    assert github.merge_mr(api_repo, mr, sha=sha, auto=True).state == "merged"


def test_delete_branch(github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef) -> None:
    github.delete_branch(api_repo, BRANCH)
    assert github_server.branch_sha("acme/api", BRANCH) is None
    github.delete_branch(api_repo, BRANCH)  # 422 "Reference does not exist": fine


def test_permission_and_vanished_repos_are_per_repo_errors(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef
) -> None:
    with github_server.lock:
        github_server.repo("acme/api").archived = True
    with pytest.raises(ForgeError) as err:
        github.create_mr(api_repo, spec())
    assert not isinstance(err.value, ForgeAuthError)
    assert str(err.value).startswith("acme/api: missing permission (403)")
    with github_server.lock:
        del github_server.repos["acme/api"]
    with pytest.raises(ForgeError, match=r"^acme/api: no longer exists on GitHub"):
        github.find_mr(api_repo, BRANCH)


def test_rate_limits_secondary_limits_and_5xx(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef, sleeps: Sleeps
) -> None:
    github_server.faults.rate_limit_next(1, path=r"/pulls$", retry_after=None)  # 403 + reset
    github_server.faults.rate_limit_next(1, path=r"/pulls$", status=429, retry_after=0)
    github_server.faults.secondary_rate_limit_next(1, path=r"/pulls$", retry_after=0)
    github_server.faults.secondary_rate_limit_next(1, path=r"/pulls$", retry_after=None)
    github_server.faults.fail_next(1, path=r"/pulls$", status=502)
    assert github.find_mr(api_repo, BRANCH) is None
    assert github_server.log.count("GET", r"/pulls$") == 6
    reset_wait, zero, secondary_zero, secondary_default, backoff = sleeps.calls
    assert 0 <= reset_wait <= 1.0  # x-ratelimit-reset is "now" in the injected fault
    assert (zero, secondary_zero) == (0.0, 0.0)
    assert secondary_default == 120.0  # 60 s at least, doubled for the second hit
    assert 0 < backoff <= FAST.backoff_cap


def test_primary_limit_exhausted_on_the_server(
    github_server: GitHubServer, github: GitHubForge, api_repo: RepoRef, sleeps: Sleeps
) -> None:
    github_server.set_rate_limit(remaining=0, reset_in=0)  # resets on the next request
    assert github.find_mr(api_repo, BRANCH) is None
    github_server.set_rate_limit(remaining=0, reset_in=3600)
    with pytest.raises(ForgeError, match="would have to wait"):
        github.find_mr(api_repo, BRANCH)
    assert sleeps.calls == []


def test_mutations_are_spaced_one_at_a_time(
    github_server: GitHubServer, api_repo: RepoRef, sleeps: Sleeps
) -> None:
    ticks = iter(float(n) / 10 for n in range(1000))
    forge = GitHubForge(
        github_server.url, token=github_server.token, sleep=sleeps, clock=lambda: next(ticks)
    )
    assert forge.api.write_interval == 1.0  # GitHub's default
    forge.create_mr(api_repo, spec())  # POST pulls + POST labels
    assert len(sleeps.calls) == 1 and 0.8 <= sleeps.calls[0] <= 1.0
