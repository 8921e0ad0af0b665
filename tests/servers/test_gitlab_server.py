"""GitLabServer driven by python-gitlab, unmodified, plus raw checks of headers and bodies."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import gitlab
import httpx
import pytest
from gitlab.v4.objects import Project as GlProject

from .gitlab import GitLabServer


@pytest.fixture
def gl(gitlab_server: GitLabServer) -> gitlab.Gitlab:
    return gitlab.Gitlab(
        gitlab_server.url, private_token=gitlab_server.token, retry_transient_errors=True
    )


@pytest.fixture
def api(gitlab_server: GitLabServer) -> Iterator[httpx.Client]:
    headers = {"PRIVATE-TOKEN": gitlab_server.token}
    with httpx.Client(base_url=gitlab_server.api_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def project(gitlab_server: GitLabServer, gl: gitlab.Gitlab) -> GlProject:
    gitlab_server.add_project("platform/api", files={"app.py": "A = 1\n", "b.py": "B = 1\n"})
    gitlab_server.commit("platform/api", "fleet/change", {"app.py": "A = 2\n"}, "Bump A")
    return gl.projects.get("platform/api")


def test_auth_user_and_version(gl: gitlab.Gitlab, gitlab_server: GitLabServer) -> None:
    gl.auth()
    assert gl.user is not None and gl.user.username == "fleetbot"
    assert gl.version() == ("17.5.1-ee", "6e3ee6d1e24")

    bad = gitlab.Gitlab(gitlab_server.url, private_token="glpat-wrong")
    with pytest.raises(gitlab.GitlabAuthenticationError) as err:
        bad.auth()
    assert err.value.response_code == 401


def test_group_projects_with_subgroups_across_pages(
    gitlab_server: GitLabServer, gl: gitlab.Gitlab
) -> None:
    expected = {f"platform/svc{i}" for i in range(4)} | {"platform/tools/lint"}
    expected |= {"platform/tools/deep/old"}
    for path in sorted(expected):
        gitlab_server.add_project(path, archived=path.endswith("old"), topics=["python"])
    gitlab_server.add_project("elsewhere/x")
    gitlab_server.add_project("platform/empty", files={})
    expected.add("platform/empty")

    group = gl.groups.get("platform")
    found = list(group.projects.list(include_subgroups=True, iterator=True, per_page=2))

    assert {p.path_with_namespace for p in found} == expected
    assert gitlab_server.log.count("GET", r"/groups/\d+/projects") == 4  # 7 projects, 2 a page
    by_path = {p.path_with_namespace: p for p in found}
    assert by_path["platform/empty"].empty_repo is True
    assert by_path["platform/empty"].default_branch is None
    assert by_path["platform/tools/deep/old"].archived is True
    assert by_path["platform/svc0"].http_url_to_repo == f"{gitlab_server.url}/platform/svc0.git"
    assert by_path["platform/svc0"].namespace["full_path"] == "platform"
    active = group.projects.list(include_subgroups=True, archived=False, get_all=True)
    assert "platform/tools/deep/old" not in {p.path_with_namespace for p in active}
    direct = group.projects.list(get_all=True)
    assert {p.path_with_namespace for p in direct} == expected - {
        "platform/tools/lint",
        "platform/tools/deep/old",
    }


def test_pagination_headers(gitlab_server: GitLabServer, api: httpx.Client) -> None:
    for i in range(5):
        gitlab_server.add_project(f"platform/p{i}")

    first = api.get("/groups/platform%2Ftools/projects")
    assert first.status_code == 404
    assert first.json() == {"message": "404 Group Not Found"}

    page2 = api.get("/groups/platform/projects", params={"per_page": 2, "page": 2})
    assert page2.headers["X-Page"] == "2"
    assert page2.headers["X-Per-Page"] == "2"
    assert page2.headers["X-Next-Page"] == "3"
    assert page2.headers["X-Prev-Page"] == "1"
    assert page2.headers["X-Total"] == "5"
    assert page2.headers["X-Total-Pages"] == "3"
    links = page2.links
    assert set(links) == {"prev", "next", "first", "last"}
    assert links["next"]["url"].startswith(f"{gitlab_server.url}/api/v4/groups/platform/projects?")
    assert "page=3" in links["next"]["url"] and "per_page=2" in links["next"]["url"]

    last = api.get(links["last"]["url"])
    assert last.headers["X-Next-Page"] == ""
    assert len(last.json()) == 1
    assert "next" not in last.links

    assert api.get("/projects", params={"page": "x"}).status_code == 400
    assert len(api.get("/projects", params={"per_page": 500}).json()) == 5  # capped at 100


def test_project_by_path_and_fork(gitlab_server: GitLabServer, gl: gitlab.Gitlab) -> None:
    gitlab_server.add_project("platform/api", topics=["python", "service"])
    gitlab_server.add_project("forks/api", forked_from="platform/api")

    fork = gl.projects.get("forks/api")
    assert fork.forked_from_project["path_with_namespace"] == "platform/api"
    parent = gl.projects.get(fork.forked_from_project["id"])
    assert parent.topics == ["python", "service"]
    assert parent.default_branch == "main"
    assert not hasattr(parent, "forked_from_project")
    with pytest.raises(gitlab.GitlabGetError) as err:
        gl.projects.get("platform/nope")
    assert err.value.response_code == 404


def test_merge_request_lifecycle(
    gitlab_server: GitLabServer, gl: gitlab.Gitlab, project: GlProject
) -> None:
    reviewer = gitlab_server.add_user("alice")
    mr = project.mergerequests.create(
        {
            "source_branch": "fleet/change",
            "target_branch": "main",
            "title": "Draft: Bump A",
            "description": "Automated",
            "labels": "fleet,automated",
            "reviewer_ids": [reviewer.id],
            "remove_source_branch": True,
        }
    )
    assert mr.iid == 1 and mr.state == "opened"
    assert mr.draft is True and mr.work_in_progress is True
    assert mr.labels == ["automated", "fleet"]
    assert mr.reviewers[0]["username"] == "alice"
    assert mr.sha == gitlab_server.branch_sha("platform/api", "fleet/change")
    assert mr.detailed_merge_status == "draft_status"
    assert mr.web_url == f"{gitlab_server.url}/platform/api/-/merge_requests/1"

    listed = project.mergerequests.list(source_branch="fleet/change", get_all=True)
    assert [m.iid for m in listed] == [1]
    assert not hasattr(listed[0], "head_pipeline")  # only GET one MR has it, like GitLab
    assert project.mergerequests.list(source_branch="other", get_all=True) == []

    mr.title = "Bump A"
    mr.labels = ["fleet"]
    mr.save()
    fresh = project.mergerequests.get(1)
    assert fresh.title == "Bump A" and fresh.draft is False and fresh.labels == ["fleet"]
    assert fresh.detailed_merge_status == "mergeable"
    assert fresh.head_pipeline is None

    note = fresh.notes.create({"body": "Opened by fleetchange"})
    assert note.body == "Opened by fleetchange" and note.system is False
    assert [n.body for n in fresh.notes.list(get_all=True)] == ["Opened by fleetchange"]
    assert fresh.approvals.get().approved is True  # no approvals required

    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        fresh.merge(sha="0" * 40)
    assert err.value.response_code == 409
    assert "SHA does not match HEAD of source branch" in str(err.value.error_message)

    fresh.merge(sha=fresh.sha)
    merged = project.mergerequests.get(1)
    assert merged.state == "merged" and merged.merged_by["username"] == "fleetbot"
    assert gitlab_server.branch_sha("platform/api", "main") == fresh.sha  # fast-forward
    assert gitlab_server.branch_sha("platform/api", "fleet/change") is None  # removed
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        merged.merge()
    assert err.value.response_code == 405


def test_duplicate_open_merge_request_is_409(project: GlProject) -> None:
    spec = {"source_branch": "fleet/change", "target_branch": "main", "title": "Bump A"}
    first = project.mergerequests.create(spec)
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.mergerequests.create(spec)
    assert err.value.response_code == 409
    message: object = err.value.error_message  # python-gitlab passes GitLab's JSON through
    assert message == [
        f"Another open merge request already exists for this source branch: !{first.iid}"
    ]
    first.state_event = "close"
    first.save()
    assert project.mergerequests.create(spec).iid == 2  # a closed one does not block


def test_missing_source_branch(project: GlProject) -> None:
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.mergerequests.create(
            {"source_branch": "nope", "target_branch": "main", "title": "x"}
        )
    assert err.value.response_code == 400
    message: object = err.value.error_message
    assert message == {"source_branch": ["does not exist"]}


def test_non_fast_forward_merge_writes_a_merge_commit(
    gitlab_server: GitLabServer, project: GlProject
) -> None:
    main_before = gitlab_server.commit("platform/api", "main", {"b.py": "B = 2\n"})
    mr = project.mergerequests.create(
        {"source_branch": "fleet/change", "target_branch": "main", "title": "Bump A"}
    )
    mr.merge(sha=mr.sha)
    repo = gitlab_server.project("platform/api").repo
    tip = repo.commit_info(gitlab_server.branch_sha("platform/api", "main") or "")
    assert tip["parent_ids"] == [main_before, mr.sha]
    assert project.mergerequests.get(mr.iid).merge_commit_sha == tip["id"]


def test_conflict_blocks_merge(gitlab_server: GitLabServer, project: GlProject) -> None:
    gitlab_server.commit("platform/api", "main", {"app.py": "A = 3\n"})
    mr = project.mergerequests.create(
        {"source_branch": "fleet/change", "target_branch": "main", "title": "Bump A"}
    )
    mr = project.mergerequests.get(mr.iid)
    assert mr.has_conflicts is True
    assert mr.detailed_merge_status == "conflict"
    assert mr.merge_status == "cannot_be_merged"
    with pytest.raises(gitlab.GitlabMRClosedError) as err:
        mr.merge(sha=mr.sha)
    assert err.value.response_code == 405


def test_auto_merge_waits_for_pipeline_and_approval(
    gitlab_server: GitLabServer, gl: gitlab.Gitlab
) -> None:
    gitlab_server.add_project("platform/svc", approvals_required=1, require_pipeline=True)
    gitlab_server.commit("platform/svc", "fleet/x", {"x.py": "x\n"})
    project = gl.projects.get("platform/svc")
    mr = project.mergerequests.create(
        {"source_branch": "fleet/x", "target_branch": "main", "title": "x"}
    )
    gitlab_server.set_pipeline("platform/svc", mr.iid, "running")
    mr = project.mergerequests.get(mr.iid)
    assert mr.head_pipeline["status"] == "running" and mr.head_pipeline["sha"] == mr.sha
    assert mr.detailed_merge_status == "ci_still_running"
    approvals = mr.approvals.get()
    assert (approvals.approved, approvals.approvals_left) == (False, 1)

    mr.merge(merge_when_pipeline_succeeds=True, sha=mr.sha)
    mr = project.mergerequests.get(mr.iid)
    assert mr.state == "opened" and mr.merge_when_pipeline_succeeds is True

    gitlab_server.set_pipeline("platform/svc", mr.iid, "success")
    assert project.mergerequests.get(mr.iid).state == "opened"  # still needs an approval
    gitlab_server.approve("platform/svc", mr.iid, "alice")
    mr = project.mergerequests.get(mr.iid)
    assert mr.state == "merged"
    assert mr.approvals.get().approved_by[0]["user"]["username"] == "alice"
    assert gitlab_server.branch_sha("platform/svc", "main") == mr.sha


def test_failed_pipeline_aborts_auto_merge(gitlab_server: GitLabServer, gl: gitlab.Gitlab) -> None:
    gitlab_server.add_project("platform/svc", ci_status="pending")
    gitlab_server.commit("platform/svc", "fleet/x", {"x.py": "x\n"})
    project = gl.projects.get("platform/svc")
    mr = project.mergerequests.create(
        {"source_branch": "fleet/x", "target_branch": "main", "title": "x"}
    )
    assert mr.head_pipeline["status"] == "pending"  # ci_status: every head gets a pipeline
    mr.merge(merge_when_pipeline_succeeds=True)
    gitlab_server.set_pipeline("platform/svc", mr.iid, "failed")
    mr = project.mergerequests.get(mr.iid)
    assert mr.state == "opened" and mr.merge_when_pipeline_succeeds is False
    assert any(n.system for n in mr.notes.list(get_all=True))


def test_new_push_updates_sha_and_mergeability_delay(
    gitlab_server: GitLabServer, project: GlProject
) -> None:
    gitlab_server.mergeability_delay = 1
    mr = project.mergerequests.create(
        {"source_branch": "fleet/change", "target_branch": "main", "title": "Bump A"}
    )
    assert project.mergerequests.get(mr.iid).detailed_merge_status == "checking"
    assert project.mergerequests.get(mr.iid).detailed_merge_status == "mergeable"
    new = gitlab_server.commit("platform/api", "fleet/change", {"c.py": "C = 1\n"})
    again = project.mergerequests.get(mr.iid)
    assert again.sha == new and again.detailed_merge_status == "checking"


def test_branches_get_and_delete(project: GlProject, api: httpx.Client) -> None:
    branch = project.branches.get("fleet/change")
    assert branch.commit["title"] == "Bump A" and branch.default is False
    project.branches.delete("fleet/change")
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.branches.get("fleet/change")
    assert err.value.response_code == 404
    resp = api.delete(f"/projects/{project.id}/repository/branches/fleet%2Fchange")
    assert resp.status_code == 404
    assert resp.json() == {"message": "404 Branch Not Found"}


def test_429_with_retry_after_zero_is_retried(
    gitlab_server: GitLabServer, gl: gitlab.Gitlab
) -> None:
    gitlab_server.add_project("platform/api")
    gitlab_server.faults.rate_limit_next(2, method="GET", path=r"/api/v4/projects/")

    project = gl.projects.get("platform/api", obey_rate_limit=True)

    assert project.path == "api"
    statuses = [e.status for e in gitlab_server.log.find("GET", "/api/v4/projects/")]
    assert statuses == [429, 429, 200]
    assert gitlab_server.faults.injected["rate_limit"] == 2


def test_5xx_is_retried_by_python_gitlab(gitlab_server: GitLabServer, gl: gitlab.Gitlab) -> None:
    gitlab_server.add_project("platform/api")
    gitlab_server.faults.fail_next(1, method="GET", path=r"/projects/", status=502)
    assert gl.projects.get("platform/api").path == "api"
    assert [e.status for e in gitlab_server.log.find("GET", r"/projects/")] == [502, 200]


def test_json_and_form_bodies_are_both_accepted(project: GlProject, api: httpx.Client) -> None:
    created = api.post(
        f"/projects/{project.id}/merge_requests",
        data={"source_branch": "fleet/change", "target_branch": "main", "title": "Form"},
    )
    assert created.status_code == 201
    iid = created.json()["iid"]
    updated = api.put(
        f"/projects/{project.id}/merge_requests/{iid}",
        data={"add_labels": "a,b", "assignee_ids[]": ["1"]},
    )
    assert updated.json()["labels"] == ["a", "b"]
    assert updated.json()["assignee"]["username"] == "fleetbot"
    empty = api.put(f"/projects/{project.id}/merge_requests/{iid}", json={})
    assert empty.status_code == 400
    assert api.get("/projects/999999").json() == {"message": "404 Project Not Found"}
    assert api.get("/nope").json() == {"error": "404 Not Found"}


def test_concurrent_clients(gitlab_server: GitLabServer) -> None:
    for i in range(8):
        gitlab_server.add_project(f"fleet/p{i}")
        gitlab_server.commit(f"fleet/p{i}", "fleet/change", {"c.txt": f"{i}\n"})

    def open_and_merge(i: int) -> str:
        client = gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)
        project = client.projects.get(f"fleet/p{i}")
        mr = project.mergerequests.create(
            {"source_branch": "fleet/change", "target_branch": "main", "title": f"change {i}"}
        )
        mr.notes.create({"body": "hello"})
        mr.merge(sha=mr.sha)
        return str(project.mergerequests.get(mr.iid).state)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(open_and_merge, range(8))) == ["merged"] * 8
    ids = [mr.id for mr in gitlab_server.merge_requests]
    assert len(set(ids)) == 8


def test_empty_project_then_first_commit(gitlab_server: GitLabServer, gl: gitlab.Gitlab) -> None:
    gitlab_server.add_project("platform/empty", files={})
    before = gl.projects.get("platform/empty")
    assert (before.empty_repo, before.default_branch) == (True, None)
    gitlab_server.commit("platform/empty", "main", {"README.md": "hi\n"})
    after = gl.projects.get("platform/empty")
    assert (after.empty_repo, after.default_branch) == (False, "main")
