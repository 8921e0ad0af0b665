"""Faults that belong to one repo stay with it: a protected branch, a repo deleted mid-run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli import run
from tests.servers.gitlab import GitLabServer
from tests.servers.httpbase import Request, Response

from . import test_end_to_end as e2e
from .test_end_to_end import BRANCH, WARN, Fleet, apply, states, write_campaign

fleet = e2e.fleet  # the server-backed fixture, parametrised below to GitLab only


@pytest.mark.parametrize("fleet", ["gitlab"], indirect=True)
def test_protected_branch_and_vanished_repo_are_recorded_per_repo(
    fleet: Fleet, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = fleet.server
    assert isinstance(server, GitLabServer)
    for name in ("platform/ok", "platform/locked", "platform/vanishing", "platform/fine"):
        fleet.add(name, {"a.py": WARN})
    server.protect_branch("platform/locked", BRANCH)
    # the repo disappears right after the projects were listed, before its clone
    original = server.handle_api
    gone: list[str] = []

    def handle(req: Request) -> Response:
        response = original(req)
        if req.method == "GET" and req.path.endswith("/projects") and not gone:
            project = server.project("platform/vanishing")
            shutil.rmtree(project.repo.path)
            gone.append(project.full_path)
        return response

    server.handle_api = handle  # type: ignore[method-assign]
    campaign = write_campaign(tmp_path, fleet.targets())

    result = apply(capsys, campaign)

    assert gone == ["platform/vanishing"]
    assert result.code == 1  # some repos failed; the run finished
    assert states(home) == {
        "platform/ok": "mr-open",
        "platform/locked": "error",
        "platform/vanishing": "error",
        "platform/fine": "mr-open",
    }
    report = {
        r["repo"]: r["reason"]
        for r in run(capsys, "status", "logging-warn", "--json").json()["repos"]
    }
    assert "not allowed to push code to protected branches" in report["platform/locked"]
    assert (
        "git clone" in report["platform/vanishing"] or "not found" in report["platform/vanishing"]
    )
    assert sorted(m.repo for m in fleet.mrs()) == ["platform/fine", "platform/ok"]
