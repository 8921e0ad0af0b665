"""``fleetchange apply`` end to end against the GitLab and GitHub test servers.

The campaign is the local-forge one of ``tests/core/test_apply.py`` (the logging.warn
codemod) with only ``[targets]`` changed; the token comes from an environment variable.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetchange.forges import github, http
from fleetchange.pipeline import forge_for
from fleetchange.state import Store
from tests.cli import Result, run
from tests.fleet import campaign_toml
from tests.servers.github import GitHubServer
from tests.servers.gitlab import GitLabServer

from .conftest import FAST, add_users_route, lose_answers

WARN = "import logging\n\n\ndef f():\n    logging.warn('x')  # keep me\n"
WARNED = "import logging\n\n\ndef f():\n    logging.warning('x')  # keep me\n"
CLEAN = "import logging\n\n\ndef f():\n    logging.warning('x')\n"
BRANCH = "fleetchange/logging-warn"
TOKEN_ENV = "FC_FORGE_TOKEN"


@dataclass(frozen=True)
class MR:
    repo: str
    source_branch: str
    state: str
    title: str
    body: str
    labels: tuple[str, ...]


class Fleet:
    """One forge server seen the same way whatever its kind."""

    def __init__(self, kind: str, server: GitLabServer | GitHubServer) -> None:
        self.kind, self.server = kind, server

    def add(self, name: str, files: dict[str, str]) -> None:
        if isinstance(self.server, GitLabServer):
            self.server.add_project(name, files=files)
        else:
            self.server.add_repo(name, files=files)

    def show(self, name: str, ref: str, path: str) -> str:
        bare = self.server.root / f"{name}.git"
        done = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=bare, capture_output=True, text=True, check=True
        )
        return done.stdout

    def mrs(self) -> list[MR]:
        with self.server.lock:
            if isinstance(self.server, GitLabServer):
                return [
                    MR(
                        m.project.full_path,
                        m.source_branch,
                        m.state,
                        m.title,
                        m.description,
                        tuple(m.labels),
                    )
                    for m in self.server.merge_requests
                ]
            return [
                MR(p.repo.full_name, p.head_ref, p.state, p.title, p.body, tuple(p.labels))
                for p in self.server.pulls
            ]

    def targets(self, groups: str = '["platform"]') -> str:
        return (
            f'forge = "{self.kind}"\nurl = "{self.server.url}"\n'
            f'groups = {groups}\ntoken_env = "{TOKEN_ENV}"\n'
        )


@pytest.fixture(params=["gitlab", "github"])
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    # production waits (1 s between GitHub writes, back-off from 1 s) would only slow tests
    monkeypatch.setattr(http, "DEFAULT_RETRY", FAST)
    monkeypatch.setattr(github, "DEFAULT_WRITE_INTERVAL", 0.0)
    server: GitLabServer | GitHubServer
    if request.param == "gitlab":
        server = GitLabServer(tmp_path / "gitlab")
        add_users_route(server)
    else:
        server = GitHubServer(tmp_path / "github")
    with server:
        monkeypatch.setenv(TOKEN_ENV, server.token)
        yield Fleet(request.param, server)
        server.assert_no_errors()


def write_campaign(tmp_path: Path, targets: str, test: str | None = None) -> Path:
    placeholder = tmp_path / "unused"
    text = campaign_toml(placeholder, test=test)
    local = f'forge = "local"\nroot = "{placeholder}"\n'
    assert local in text
    path = tmp_path / "campaign.toml"
    path.write_text(text.replace(local, targets))
    return path


def states(home: Path, campaign: str = "logging-warn") -> dict[str, str]:
    store = Store(home / "state.sqlite3")
    try:
        return {r.repo: r.state for r in store.repos(campaign)}
    finally:
        store.close()


def apply(capsys: pytest.CaptureFixture[str], campaign: Path, *args: str) -> Result:
    forge_for.cache_clear()  # each run a new process, as from a shell
    return run(capsys, "apply", str(campaign), *args)


def test_apply_opens_one_mr_per_changed_repo_and_a_rerun_opens_none(
    fleet: Fleet, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.add("platform/a", {"a.py": WARN, "untouched.py": "x = 1  # odd   spacing\n"})
    fleet.add("platform/b", {"b.py": CLEAN})
    fleet.add("platform/c", {"pkg/c.py": WARN})
    fleet.add("platform/empty", {})
    fleet.add("elsewhere/d", {"d.py": WARN})
    campaign = write_campaign(tmp_path, fleet.targets())

    result = apply(capsys, campaign)

    assert result.code == 0, result.err
    assert states(home) == {
        "platform/a": "mr-open",
        "platform/b": "no-match",
        "platform/c": "mr-open",
        "platform/empty": "skipped",
    }
    assert fleet.show("platform/a", BRANCH, "a.py") == WARNED
    assert fleet.show("platform/a", BRANCH, "untouched.py") == "x = 1  # odd   spacing\n"
    assert fleet.show("platform/c", BRANCH, "pkg/c.py") == WARNED
    mrs = sorted(fleet.mrs(), key=lambda m: m.repo)
    assert [(m.repo, m.source_branch, m.state) for m in mrs] == [
        ("platform/a", BRANCH, "open" if fleet.kind == "github" else "opened"),
        ("platform/c", BRANCH, "open" if fleet.kind == "github" else "opened"),
    ]
    assert mrs[0].title == "Replace logging.warn" and mrs[0].labels == ("fleetchange",)
    assert "logging.warn is deprecated." in mrs[0].body and "`a.py`" in mrs[0].body

    again = apply(capsys, campaign)
    assert again.code == 0, again.err
    assert "3 repo(s) unchanged since the last run" in again.err, again.err
    forced = apply(capsys, campaign, "--force")  # looks again: finds the MRs, opens none
    assert forced.code == 0, forced.err
    assert len(fleet.mrs()) == 2
    posts = r"/merge_requests$" if fleet.kind == "gitlab" else r"/pulls$"
    assert fleet.server.log.count("POST", posts) == 2
    # what was read back matched what was asked for: no update either
    edits = fleet.server.log.count("PUT" if fleet.kind == "gitlab" else "PATCH", r"/\d+$")
    assert edits == 0


def test_bad_group_and_bad_token_exit_2_with_one_line(
    fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet.add("platform/a", {"a.py": WARN})
    unknown = apply(capsys, write_campaign(tmp_path, fleet.targets('["nope"]')))
    assert unknown.code == 2
    assert unknown.err.count("\n") == 1 and "'nope' not found" in unknown.err

    monkeypatch.setenv(TOKEN_ENV, "wrong-token-value")
    rejected = apply(capsys, write_campaign(tmp_path, fleet.targets()))
    assert rejected.code == 2
    assert rejected.err.count("\n") == 1 and "rejected the token (401)" in rejected.err
    assert "wrong-token-value" not in rejected.err

    monkeypatch.delenv(TOKEN_ENV)
    missing = apply(capsys, write_campaign(tmp_path, fleet.targets()))
    assert missing.code == 2 and f"set {TOKEN_ENV}" in missing.err


def test_fifty_repos_through_injected_faults_get_exactly_one_mr_each(
    fleet: Fleet, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    size = 50 if fleet.kind == "gitlab" else 25  # the same paths, at half the cost
    changed = {f"platform/r{i:02d}" for i in range(size) if i % 5}
    for i in range(size):
        name = f"platform/r{i:02d}"
        fleet.add(name, {"m.py": WARN if name in changed else CLEAN})
    fleet.server.faults.configure(rate_429=0.1, rate_5xx=0.1, drop_connection_rate=0.02, seed=3)
    posts = r"/merge_requests$" if fleet.kind == "gitlab" else r"/pulls$"
    lost = lose_answers(fleet.server, "POST", posts, times=3)  # created, answer lost
    campaign = write_campaign(tmp_path, fleet.targets())

    result = apply(capsys, campaign)

    assert result.code == 0, result.err
    found = states(home)
    assert {name for name, state in found.items() if state == "mr-open"} == changed
    assert {name for name, state in found.items() if state != "mr-open"} == (
        {f"platform/r{i:02d}" for i in range(size)} - changed
    )
    assert len(lost) == 3
    injected = fleet.server.faults.injected
    assert injected["rate_limit"] >= 3 and injected["status"] >= 3, injected
    mrs = fleet.mrs()
    assert sorted(m.repo for m in mrs) == sorted(changed)  # exactly one each
    assert all(m.source_branch == BRANCH for m in mrs)


def test_the_token_is_nowhere(
    fleet: Fleet,
    tmp_path: Path,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet.add("platform/a", {"a.py": WARN})
    fleet.add("platform/b", {"b.py": WARN})
    # the test command sees the environment, token variable included, and prints it
    campaign = write_campaign(tmp_path, fleet.targets(), test="env; git config --list")
    token = fleet.server.token.encode()

    first = apply(capsys, campaign)
    assert first.code == 0, first.err
    forced = apply(capsys, campaign, "--force")
    status = run(capsys, "status", "logging-warn", "--all")
    as_json = run(capsys, "status", "--json")

    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "state.sqlite3" for p in files)
    assert any(p.name == "config" and p.parent.name.endswith(".git") for p in files)  # mirrors
    logs = [p.read_text() for p in files if "logs" in p.parts and p.suffix == ".log"]
    assert logs and all(f"{TOKEN_ENV}=***" in text for text in logs)  # printed, redacted
    leaks = [str(p) for p in files if token in p.read_bytes()]
    assert leaks == []
    for result in (first, forced, status, as_json):
        assert token.decode() not in result.out + result.err
    assert all(token.decode() not in m.body + m.title for m in fleet.mrs())
    sent = [e for e in fleet.server.log.entries if not e.git]
    assert all(token not in e.body for e in sent)


@pytest.mark.parametrize("fleet", ["gitlab"], indirect=True)  # one forge shows it
def test_worker_processes_build_their_own_clients(
    fleet: Fleet, tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("platform/a", "platform/b"):
        fleet.add(name, {"m.py": WARN})
    campaign = write_campaign(tmp_path, fleet.targets())
    result = apply(capsys, campaign, "--executor", "processes", "--jobs", "1")
    assert result.code == 0, result.err
    assert set(states(home).values()) == {"mr-open"}
    assert sorted(m.repo for m in fleet.mrs()) == ["platform/a", "platform/b"]
