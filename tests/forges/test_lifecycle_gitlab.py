"""Issue #6 on the GitLab test server: paced waves, upkeep of moved bases, human commits, verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run
from tests.servers.gitlab import GitLabServer

from . import test_end_to_end as e2e
from .test_end_to_end import BRANCH, WARN, WARNED, Fleet, apply, states, write_campaign

fleet = e2e.fleet  # the server-backed fixture, parametrised below to GitLab only


@pytest.fixture
def gitlab_fleet(fleet: Fleet) -> Fleet:
    assert fleet.kind == "gitlab"
    return fleet


def server(fleet: Fleet) -> GitLabServer:
    assert isinstance(fleet.server, GitLabServer)
    return fleet.server


def open_iids(fleet: Fleet) -> list[tuple[str, int]]:
    with server(fleet).lock:
        return [
            (m.project.full_path, m.iid)
            for m in server(fleet).merge_requests
            if m.state == "opened"
        ]


def review_and_merge(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], only: str | None = None
) -> None:
    """Reviewers approve, CI goes green, and `fleetchange merge` merges what is ready."""
    for path, iid in open_iids(fleet):
        if only is not None and path != only:
            continue
        server(fleet).set_pipeline(path, iid, "success")
        server(fleet).approve(path, iid)
    assert run(capsys, "sync", "logging-warn").code == 0
    assert run(capsys, "merge", "logging-warn").code == 0


@pytest.mark.parametrize("fleet", ["gitlab"], indirect=True)
def test_waves_and_max_open_on_gitlab(
    gitlab_fleet: Fleet, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(60):
        gitlab_fleet.add(f"platform/r{index:02d}", {"a.py": WARN})
    campaign = write_campaign(tmp_path, gitlab_fleet.targets())
    campaign.write_text(
        campaign.read_text() + '[rollout]\nwaves = [5, 20, "100%"]\nmax_open = 15\n'
    )

    assert apply(capsys, campaign).code == 0
    assert len(open_iids(gitlab_fleet)) == 5
    assert apply(capsys, campaign).code == 0  # canary not merged: nothing new
    assert len(open_iids(gitlab_fleet)) == 5

    highest = 5
    for _ in range(12):
        review_and_merge(gitlab_fleet, capsys)
        assert apply(capsys, campaign).code == 0
        highest = max(highest, len(open_iids(gitlab_fleet)))
        assert highest <= 15
        if not open_iids(gitlab_fleet):
            break
    assert set(states(home).values()) == {"merged"}
    assert len(gitlab_fleet.mrs()) == 60 and highest == 15


@pytest.mark.parametrize("fleet", ["gitlab"], indirect=True)
def test_moved_base_human_commit_and_verify_on_gitlab(
    gitlab_fleet: Fleet, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("platform/moves", "platform/human", "platform/merged"):
        gitlab_fleet.add(name, {"a.py": WARN})
    campaign = write_campaign(tmp_path, gitlab_fleet.targets())
    assert apply(capsys, campaign).code == 0
    gl = server(gitlab_fleet)
    first = gl.branch_sha("platform/moves", BRANCH)

    # the default branch moves: the change is made again on the new base, same MR
    gl.commit("platform/moves", "main", {"b.py": "import logging\nlogging.warn('y')\n"})
    # a person pushes onto the campaign branch, then the base moves too
    human = gl.commit("platform/human", BRANCH, {"note.txt": "mine"}, message="human fix")
    gl.commit("platform/human", "main", {"c.py": "x = 1\n"})
    # one MR is merged, then the change is reverted on the default branch
    review_and_merge(gitlab_fleet, capsys, only="platform/merged")
    gl.commit("platform/merged", "main", {"a.py": WARN}, message="Revert")

    assert apply(capsys, campaign).code == 0
    moved = gl.branch_sha("platform/moves", BRANCH)
    assert moved != first
    assert (
        gitlab_fleet.show("platform/moves", BRANCH, "b.py")
        == "import logging\nlogging.warning('y')\n"
    )
    assert gitlab_fleet.show("platform/moves", BRANCH, "a.py") == WARNED
    assert gl.branch_sha("platform/human", BRANCH) == human
    assert states(home)["platform/human"] == "diverged"
    assert sum(m.repo == "platform/moves" for m in gitlab_fleet.mrs()) == 1

    report = run(capsys, "verify", "logging-warn", "--json")
    assert report.code == 1
    remaining = {r["repo"]: r["verdict"] for r in report.json()["remaining"]}
    assert "merged but the pattern is back" in remaining["platform/merged"]
