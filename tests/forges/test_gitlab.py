"""GitLabForge against the in-process GitLab server (real HTTP on 127.0.0.1, real git)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fleetchange import gitops
from fleetchange.campaign import Targets
from fleetchange.forges import make_forge
from fleetchange.forges.base import ForgeAuthError, ForgeError, MRSpec, RepoRef
from fleetchange.forges.gitlab import GitLabForge
from tests.servers.gitlab import GitLabServer

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


def repo(gitlab: GitLabForge, name: str) -> RepoRef:
    return next(r for r in gitlab.list_repos() if r.name == name)


@pytest.fixture
def api_repo(gitlab_server: GitLabServer, gitlab: GitLabForge) -> RepoRef:
    gitlab_server.add_project("platform/api", files={"app.py": "A = 1\n"})
    gitlab_server.commit("platform/api", BRANCH, {"app.py": "A = 2\n"}, "fleetchange change")
    return repo(gitlab, "platform/api")


def targets(url: str, **kw: object) -> Targets:
    values: dict[str, object] = dict(
        forge="gitlab",
        root=None,
        url=url,
        token_env=None,
        groups=(),
        repos=("**",),
        exclude=(),
        topics=(),
        contains=None,
        include_archived=False,
        include_forks=False,
    )
    values.update(kw)
    return Targets(**values)  # type: ignore[arg-type]


# -- listing -------------------------------------------------------------------------


def test_lists_groups_with_subgroups_across_pages_with_flags(
    gitlab_server: GitLabServer, gitlab: GitLabForge
) -> None:
    for path in ("platform/a", "platform/b", "platform/tools/lint", "platform/tools/deep/c"):
        gitlab_server.add_project(path, topics=["python"] if path.endswith("a") else ())
    gitlab_server.add_project("platform/old", archived=True)
    gitlab_server.add_project("platform/empty", files={})
    gitlab_server.add_project("platform/fork", forked_from="platform/a")
    gitlab_server.add_project("elsewhere/x")

    repos = {r.name: r for r in gitlab.list_repos()}

    assert set(repos) == {
        "platform/a",
        "platform/b",
        "platform/tools/lint",
        "platform/tools/deep/c",
        "platform/old",
        "platform/empty",
        "platform/fork",
    }
    assert gitlab_server.log.count("GET", r"/groups/platform/projects$") == 4  # 7 at 2 a page
    first = gitlab_server.log.find("GET", r"/groups/platform/projects$")[0]
    assert first.query["include_subgroups"] == ["true"] and first.query["per_page"] == ["2"]
    a = repos["platform/a"]
    assert a.clone_url == f"{gitlab_server.url}/platform/a.git"
    assert a.default_branch == "main" and a.topics == ("python",)
    assert a.forge_id == str(gitlab_server.project("platform/a").id)
    assert (a.archived, a.fork, a.empty) == (False, False, False)
    assert repos["platform/old"].archived
    assert repos["platform/fork"].fork
    assert repos["platform/empty"].empty and repos["platform/empty"].default_branch is None


def test_several_groups_are_listed_once_each(gitlab_server: GitLabServer, sleeps: Sleeps) -> None:
    gitlab_server.add_project("platform/a")
    gitlab_server.add_project("edge/tools/b")
    gitlab_server.add_project("edge/c")
    forge = GitLabForge(
        gitlab_server.url, groups=["edge/tools", "platform", "edge"], token=gitlab_server.token
    )
    names = [r.name for r in forge.list_repos()]
    assert sorted(names) == ["edge/c", "edge/tools/b", "platform/a"]
    assert gitlab_server.log.count("GET", r"/groups/edge%2Ftools/projects$") == 1


def test_without_groups_lists_membership_projects(gitlab_server: GitLabServer) -> None:
    gitlab_server.add_project("platform/a")
    gitlab_server.add_project("other/b")
    forge = GitLabForge(gitlab_server.url, token=gitlab_server.token)
    assert sorted(r.name for r in forge.list_repos()) == ["other/b", "platform/a"]
    assert gitlab_server.log.last("GET", r"/api/v4/projects$").query["membership"] == ["true"]


def test_unknown_group_is_a_clear_error(gitlab_server: GitLabServer) -> None:
    forge = GitLabForge(gitlab_server.url, groups=["nope/sub"], token=gitlab_server.token)
    with pytest.raises(ForgeError) as err:
        list(forge.list_repos())
    assert not isinstance(err.value, ForgeAuthError)
    assert str(err.value).startswith(f"GitLab group 'nope/sub' not found at {gitlab_server.url}")


# -- credentials -----------------------------------------------------------------------


def test_wrong_token_is_fatal_401(gitlab_server: GitLabServer) -> None:
    forge = GitLabForge(gitlab_server.url, groups=["platform"], token="glpat-wrong-token")
    with pytest.raises(ForgeAuthError) as err:
        list(forge.list_repos())
    assert str(err.value).startswith(f"GitLab rejected the token (401) for {gitlab_server.url}")
    assert "glpat-wrong-token" not in str(err.value)


def test_missing_token_variable(
    gitlab_server: GitLabServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITLAB_TOKEN", raising=False)
    forge = make_forge(targets(gitlab_server.url))
    with pytest.raises(ForgeAuthError, match="set GITLAB_TOKEN"):
        list(forge.list_repos())
    with pytest.raises(ForgeAuthError, match="set GITLAB_TOKEN"):
        forge.git_env()
    monkeypatch.setenv("FC_TOKEN", "")
    named = make_forge(targets(gitlab_server.url, token_env="FC_TOKEN"))
    with pytest.raises(ForgeAuthError, match="set FC_TOKEN"):
        list(named.list_repos())


def test_token_from_the_named_variable_is_registered_as_a_secret(
    gitlab_server: GitLabServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FC_GITLAB", gitlab_server.token)
    forge = make_forge(targets(gitlab_server.url + "/", token_env="FC_GITLAB"))
    assert isinstance(forge, GitLabForge)
    assert forge.url == gitlab_server.url
    assert forge.key.startswith("gitlab-") and len(forge.key) == len("gitlab-") + 12
    assert gitops.redact(f"x {gitlab_server.token} y") == "x *** y"
    assert list(forge.list_repos()) == []


def test_push_through_git_env_keeps_the_token_out_of_config_and_argv(
    gitlab_server: GitLabServer,
    gitlab: GitLabForge,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gitlab_server.add_project("platform/api", files={"app.py": "A = 1\n"})
    target = repo(gitlab, "platform/api")
    argv: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        argv.append(list(args))
        return real_run(args, **kw)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(subprocess, "run", recording_run)  # git on both sides
    env = gitlab.git_env()
    work = tmp_path / "scratch"
    gitops.git("clone", "-q", target.clone_url, str(work), cwd=tmp_path, env=env)
    (work / "app.py").write_text("A = 2\n")
    gitops.git("commit", "-qam", "change", cwd=work)
    gitops.git("push", "-q", target.clone_url, f"HEAD:refs/heads/{BRANCH}", cwd=work, env=env)

    head = gitops.git("rev-parse", "HEAD", cwd=work)
    assert gitlab_server.branch_sha("platform/api", BRANCH) == head
    token = gitlab_server.token
    assert token not in (work / ".git" / "config").read_text()
    assert all(token not in arg for args in argv for arg in args)
    assert token not in target.clone_url
    assert env["FLEETCHANGE_GIT_USERNAME"] == "oauth2"
    # the credential reached the server as Basic auth on the git requests
    assert gitlab_server.log.count("POST", r"git-receive-pack$", status=200, git=True) == 1

    bad = GitLabForge(gitlab_server.url, token="glpat-not-the-token").git_env()
    with pytest.raises(gitops.GitError) as err:
        gitops.git("push", "-q", target.clone_url, "HEAD:refs/heads/x", cwd=work, env=bad)
    assert "glpat-not-the-token" not in str(err.value)


# -- merge requests --------------------------------------------------------------------


def test_find_or_create_then_409_duplicate_returns_the_open_one(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    assert gitlab.find_mr(api_repo, BRANCH) is None
    mr = gitlab.create_mr(api_repo, spec())
    assert (mr.number, mr.state, mr.source_branch, mr.target_branch) == (1, "open", BRANCH, "main")
    assert mr.head_sha == gitlab_server.branch_sha("platform/api", BRANCH)
    assert mr.labels == ("automated", "fleetchange")
    assert mr.url == f"{gitlab_server.url}/platform/api/-/merge_requests/1"
    found = gitlab.find_mr(api_repo, BRANCH)
    assert found is not None and (found.number, found.state, found.title) == (1, "open", mr.title)

    again = gitlab.create_mr(api_repo, spec(body="New reasons."))  # answered 409
    assert again.number == 1 and again.body == "New reasons."
    assert gitlab_server.log.count("POST", r"/merge_requests$", status=409) == 1
    assert len(gitlab_server.merge_requests) == 1


def test_find_prefers_the_open_mr_then_the_newest(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    first = gitlab.create_mr(api_repo, spec())
    gitlab.close_mr(api_repo, first, "")
    second = gitlab.create_mr(api_repo, spec())
    assert second.number == 2
    assert gitlab.close_mr(api_repo, second, "").state == "closed"
    found = gitlab.find_mr(api_repo, BRANCH)
    assert found is not None and (found.number, found.state) == (2, "closed")
    reopened = gitlab.create_mr(api_repo, spec())
    found = gitlab.find_mr(api_repo, BRANCH)
    assert found is not None and found.number == reopened.number == 3 and found.state == "open"


@pytest.mark.parametrize("how", ["reset", "stall"])
def test_a_create_whose_answer_is_lost_makes_exactly_one_mr(
    gitlab_server: GitLabServer, api_repo: RepoRef, sleeps: Sleeps, how: str
) -> None:
    import httpx

    forge = GitLabForge(
        gitlab_server.url,
        token=gitlab_server.token,
        sleep=sleeps,
        retry=FAST,
        timeout=httpx.Timeout(0.5, connect=5),
    )
    lost = lose_answers(
        gitlab_server, "POST", r"/merge_requests$", stall=1.0 if how == "stall" else None
    )
    mr = forge.create_mr(api_repo, spec())
    assert lost == [201]
    assert len(gitlab_server.merge_requests) == 1 and mr.number == 1 and mr.state == "open"
    wait_for(lambda: gitlab_server.log.count("POST", r"/merge_requests$") > 0)  # stalled answer
    assert gitlab_server.log.count("POST", r"/merge_requests$") == 1  # looked up, not re-sent


def test_a_create_failing_with_5xx_before_landing_is_retried(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef, sleeps: Sleeps
) -> None:
    gitlab_server.faults.fail_next(2, method="POST", path=r"/merge_requests$", status=502)
    mr = gitlab.create_mr(api_repo, spec())
    assert mr.number == 1 and len(gitlab_server.merge_requests) == 1
    assert gitlab_server.log.count("POST", r"/merge_requests$") == 3
    assert len(sleeps.waits) == 2  # backed off between the attempts


def test_draft_labels_assignees_and_reviewers(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    alice, bob = gitlab_server.add_user("alice"), gitlab_server.add_user("bob")
    mr = gitlab.create_mr(
        api_repo, spec(draft=True, assignees=("alice",), reviewers=("bob", "ghost"))
    )
    assert mr.draft and mr.title == "Replace logging.warn"  # the prefix is GitLab's business
    live = gitlab_server.mr("platform/api", mr.number)
    assert live.title == "Draft: Replace logging.warn"
    assert live.assignees == [alice] and live.reviewers == [bob]
    sent = json.loads(gitlab_server.log.last("POST", r"/merge_requests$").body)
    assert sent["labels"] == "fleetchange,automated"
    assert sent["assignee_ids"] == [alice.id] and sent["reviewer_ids"] == [bob.id]
    assert gitlab_server.log.count("GET", r"/users$") == 3

    ready = gitlab.update_mr(api_repo, mr, spec(title="New title", labels=("x",)))
    assert (ready.title, ready.draft, ready.labels) == ("New title", False, ("x",))
    assert gitlab_server.mr("platform/api", mr.number).title == "New title"


def test_close_comments_first(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    mr = gitlab.create_mr(api_repo, spec())
    closed = gitlab.close_mr(api_repo, mr, "No longer needed.")
    assert closed.state == "closed"
    notes = gitlab_server.mr("platform/api", mr.number).notes
    assert [(n.body, n.system) for n in notes] == [("No longer needed.", False), ("closed", True)]


def test_comment_whose_answer_is_lost_is_posted_once(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    mr = gitlab.create_mr(api_repo, spec())
    lose_answers(gitlab_server, "POST", r"/notes$")
    gitlab.comment_mr(api_repo, mr, "Hello")
    assert [n.body for n in gitlab_server.mr("platform/api", mr.number).notes] == ["Hello"]


def test_pipeline_and_approvals_come_from_get_mr(
    gitlab_server: GitLabServer, gitlab: GitLabForge
) -> None:
    gitlab_server.add_project("platform/api", approvals_required=1, ci_status="running")
    gitlab_server.commit("platform/api", BRANCH, {"x.py": "x\n"})
    target = repo(gitlab, "platform/api")
    mr = gitlab.create_mr(target, spec())
    listed = gitlab.find_mr(target, BRANCH)
    assert listed is not None and listed.pipeline is None  # the list has no head_pipeline

    fresh = gitlab.get_mr(target, mr.number)
    assert fresh.pipeline == "running"
    assert (fresh.approved, fresh.approvals_left) == (False, 1)
    assert fresh.mergeable is False and fresh.merge_status == "not_approved"

    gitlab_server.approve("platform/api", mr.number)
    gitlab_server.set_pipeline("platform/api", mr.number, "success")
    done = gitlab.get_mr(target, mr.number)
    assert (done.pipeline, done.approved, done.approvals_left) == ("success", True, 0)
    assert done.mergeable is True and done.merge_status == "mergeable"
    gitlab_server.set_pipeline("platform/api", mr.number, "failed")
    assert gitlab.get_mr(target, mr.number).pipeline == "failed"


def test_merge_with_the_sha_guard(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    mr = gitlab.create_mr(api_repo, spec())
    assert mr.head_sha is not None
    with pytest.raises(ForgeError, match="head moved"):
        gitlab.merge_mr(api_repo, mr, sha="0" * 40)
    merged = gitlab.merge_mr(api_repo, mr, sha=mr.head_sha)
    assert merged.state == "merged"
    assert gitlab_server.branch_sha("platform/api", "main") == mr.head_sha
    assert gitlab.merge_mr(api_repo, mr, sha=mr.head_sha).state == "merged"  # a retried merge


def test_conflicts_and_refused_merges(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    mr = gitlab.create_mr(api_repo, spec())
    gitlab_server.commit("platform/api", "main", {"app.py": "A = 3\n"})
    fresh = gitlab.get_mr(api_repo, mr.number)
    assert fresh.has_conflicts and fresh.mergeable is False and fresh.merge_status == "conflict"
    assert fresh.head_sha is not None
    with pytest.raises(ForgeError, match=r"platform/api!1: not mergeable: conflict \(405\)"):
        gitlab.merge_mr(api_repo, fresh, sha=fresh.head_sha)


def test_auto_merge_waits_for_the_pipeline(
    gitlab_server: GitLabServer, gitlab: GitLabForge
) -> None:
    gitlab_server.add_project("platform/api", ci_status="running")
    gitlab_server.commit("platform/api", BRANCH, {"x.py": "x\n"})
    target = repo(gitlab, "platform/api")
    mr = gitlab.create_mr(target, spec())
    assert mr.head_sha is not None
    waiting = gitlab.merge_mr(target, mr, sha=mr.head_sha, auto=True)
    assert waiting.state == "open" and waiting.extra.get("auto_merge") == "true"
    sent = json.loads(gitlab_server.log.last("PUT", r"/merge$").body)
    assert sent == {"sha": mr.head_sha, "merge_when_pipeline_succeeds": True, "auto_merge": True}
    gitlab_server.set_pipeline("platform/api", mr.number, "success")
    assert gitlab.get_mr(target, mr.number).state == "merged"


def test_delete_branch_tolerates_a_missing_branch(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    gitlab.delete_branch(api_repo, BRANCH)
    assert gitlab_server.branch_sha("platform/api", BRANCH) is None
    gitlab.delete_branch(api_repo, BRANCH)


def test_403_and_vanished_projects_are_per_repo_errors(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef
) -> None:
    gitlab_server.set_archived("platform/api")
    with pytest.raises(ForgeError) as err:
        gitlab.create_mr(api_repo, spec())
    assert not isinstance(err.value, ForgeAuthError)
    assert str(err.value).startswith("platform/api: missing permission (403)")

    with gitlab_server.lock:
        del gitlab_server.projects[int(api_repo.forge_id)]
    with pytest.raises(ForgeError, match=r"^platform/api: no longer exists on GitLab"):
        gitlab.find_mr(api_repo, BRANCH)


def test_rate_limits_and_faults_on_the_wire(
    gitlab_server: GitLabServer, gitlab: GitLabForge, api_repo: RepoRef, sleeps: Sleeps
) -> None:
    gitlab_server.faults.rate_limit_next(2, path=r"/merge_requests")
    gitlab_server.faults.rate_limit_next(1, path=r"/merge_requests", retry_after=None)
    gitlab_server.faults.fail_next(1, method="GET", path=r"/merge_requests", status=500)
    gitlab_server.faults.drop_next(1, method="GET", path=r"/merge_requests")
    assert gitlab.find_mr(api_repo, BRANCH) is None
    assert gitlab_server.log.count("GET", r"/merge_requests$") == 6
    # Retry-After: 0 twice, then RateLimit-Reset (an epoch about now), then two back-offs
    assert sleeps.calls[:2] == [0.0, 0.0]
    assert 0 <= sleeps.calls[2] <= 1.0
    assert len(sleeps.calls) == 5


def test_forge_object_is_usable_after_pickling(
    gitlab_server: GitLabServer, api_repo: RepoRef
) -> None:
    import pickle

    forge = GitLabForge(gitlab_server.url, token=gitlab_server.token)
    clone = pickle.loads(pickle.dumps(forge))
    assert clone.find_mr(api_repo, BRANCH) is None
    assert os.getpid() == clone.api._pid
